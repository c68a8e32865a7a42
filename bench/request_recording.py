"""The gateway's overhead of request recording under load: recording on vs off.

Runs one gateway instance as `make run` runs it (`python -m taskmesh_gateway`, a subprocess
with its own port) against the local Redis and RabbitMQ, with rate limits lifted and an
events exchange of its own (deleted afterwards), once with `REQUEST_RECORDING_ENABLED=true`
and once with `false`, alternating for `--rounds` rounds so that drift on the shared machine
hits both alike. Its auth service is a stand-in in this process that publishes the signing
key and answers GetMe; the tokens are minted with bench/auth_overhead.py's `mint_tokens`
(imported, not copied).

The load: `--clients` concurrent clients (one user and token each), each sending
`GET /api/v1/auth/me` back to back for `--seconds` (after `--warmup` seconds): a cheap
authenticated route — token verification (remembered), the one admission script in Redis,
then the answer from the `/auth/me` cache in Redis (`X-Cache: HIT`), no service call.
Prints first the CPU cost of recording one request measured in-process (this process's CPU
time, so other load on the machine barely skews it); then, per round and mode, throughput,
p50/p95/p99 latency and the gateway process's CPU time per request (from /proc, Linux), the
gateway's own count of records shipped and dropped, and the medians over the rounds.
Throughput and latency follow whatever else the machine runs; the CPU per request much less.
Asserts nothing; stops everything it started.

    .venv/bin/python bench/request_recording.py [--clients 8] [--seconds 15] [--warmup 3]
        [--rounds 2] [--redis-url redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.util
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import aio_pika
import grpc
import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client.parser import text_string_to_metric_families
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh.common.v1 import common_pb2
from taskmesh_chassis.events import encode_event
from taskmesh_chassis.testing import find_free_port
from taskmesh_gateway.request_records import (
    RequestRecorder,
    RequestRecordingMiddleware,
    batch_event,
)

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
ROUTE = "/api/v1/auth/me"
READY_TIMEOUT_S = 30.0
BATCH = 500


def _import_auth_overhead() -> ModuleType:
    """bench/auth_overhead.py as a module: its token minting."""
    path = Path(__file__).with_name("auth_overhead.py")
    spec = importlib.util.spec_from_file_location("taskmesh_bench_auth_overhead", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


auth_overhead = _import_auth_overhead()


class StandInAuth(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    """What the gateway asks auth for on this route: the signing key, and GetMe on a miss."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        self.jwks = auth_pb2.Jwks(
            keys=[auth_pb2.Jwk(kid="bench", kty="OKP", alg="EdDSA", use="sig", crv="Ed25519", x=x)]
        )

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.Jwks:
        """The one published key."""
        return self.jwks

    async def GetMe(
        self, request: auth_pb2.GetMeRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.User:
        """The caller, as the token in the metadata names them."""
        metadata = dict(context.invocation_metadata() or ())
        token = str(metadata.get("authorization", "")).removeprefix("Bearer ")
        claims = jwt.decode(token, options={"verify_signature": False})
        created = Timestamp()
        created.GetCurrentTime()
        return auth_pb2.User(
            id=claims["sub"],
            email=f"{claims['sub']}@bench.example",
            role=common_pb2.ROLE_USER,
            active=True,
            created_at=created,
        )


@dataclass
class Result:
    """One measured run."""

    recording: bool
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    gateway_cpu_s: float
    """CPU time the gateway process used during the measured window."""
    shipped: float
    dropped: float

    @property
    def cpu_per_request_us(self) -> float:
        return self.gateway_cpu_s / self.requests * 1e6

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def quantile(self, q: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100)[q - 1]

    def line(self, label: str) -> str:
        mode = "on " if self.recording else "off"
        return (
            f"{label:<9} recording {mode}  {self.throughput:7.0f} req/s   "
            f"p50 {self.quantile(50):6.2f} ms   p95 {self.quantile(95):6.2f} ms   "
            f"p99 {self.quantile(99):6.2f} ms   "
            f"gateway CPU {self.cpu_per_request_us:5.0f} µs/req   "
            f"({self.requests} requests, {self.errors} errors)"
        )


class Gateway:
    """One gateway process started by this script."""

    def __init__(self, *, recording: bool, auth_target: str, redis_url: str, exchange: str):
        self.port = find_free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "GATEWAY_PORT": str(self.port),
            "INSTANCE_NAME": f"bench-gateway-{'on' if recording else 'off'}",
            "AUTH_GRPC_TARGET": auth_target,
            "REDIS_URL": redis_url,
            "AMQP_URL": AMQP_URL,
            "EVENTS_EXCHANGE": exchange,
            "RATE_LIMIT_USER_PER_MIN": "100000000",
            "RATE_LIMIT_ANON_PER_MIN": "100000000",
            "REQUEST_RECORDING_ENABLED": "true" if recording else "false",
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, authorization: str) -> None:
        """Start it; wait until it serves the measured route."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "taskmesh_gateway",
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise SystemExit(f"the gateway exited with {self.process.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    answer = await client.get(ROUTE, headers={"Authorization": authorization})
                    if answer.status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise SystemExit(f"the gateway did not serve {ROUTE} within {READY_TIMEOUT_S} s")

    async def record_counts(self) -> tuple[float, float]:
        """Records shipped and dropped, from the gateway's /metrics."""
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            text = (await client.get("/metrics")).text
        counts = {
            sample.labels.get("outcome"): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "taskmesh_request_records_total"
        }
        return counts.get("shipped", 0.0), counts.get("dropped", 0.0)

    async def stop(self) -> None:
        """SIGTERM, as a process manager stops it (the shipper flushes); kill after 30 s."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    url: str, pid: int, authorizations: list[str], warmup_s: float, seconds: float
) -> tuple[list[float], int, float]:
    """Each client sends the route back to back; latencies (ms), errors and the gateway's CPU
    seconds, all of the measured window."""
    latencies: list[float] = []
    errors = 0
    measuring_from = time.perf_counter() + warmup_s
    until = measuring_from + seconds
    limits = httpx.Limits(max_connections=len(authorizations))

    async def gateway_cpu() -> float:
        await asyncio.sleep(measuring_from - time.perf_counter())
        before = cpu_seconds(pid)
        await asyncio.sleep(until - time.perf_counter())
        return cpu_seconds(pid) - before

    async def client_loop(client: httpx.AsyncClient, authorization: str) -> None:
        nonlocal errors
        headers = {"Authorization": authorization}
        while (started := time.perf_counter()) < until:
            try:
                answer = await client.get(ROUTE, headers=headers)
                ok = answer.status_code == 200 and answer.headers.get("x-cache") == "HIT"
            except httpx.HTTPError:
                ok = False
            ended = time.perf_counter()
            if started >= measuring_from and ended <= until:
                latencies.append((ended - started) * 1000)
                errors += 0 if ok else 1

    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        cpu = asyncio.create_task(gateway_cpu())
        await asyncio.gather(*(client_loop(client, auth) for auth in authorizations))
    return latencies, errors, await cpu


async def run_once(
    recording: bool, arguments: argparse.Namespace, auth_target: str, tokens: list[str]
) -> Result:
    """Start a gateway in the given mode, load it, read its record counts, stop it."""
    exchange = f"bench.records.{uuid.uuid4().hex[:8]}"
    authorizations = [f"Bearer {token}" for token in tokens]
    gateway = Gateway(
        recording=recording,
        auth_target=auth_target,
        redis_url=arguments.redis_url,
        exchange=exchange,
    )
    try:
        await gateway.start(authorizations[0])
        for authorization in authorizations:  # fill the /auth/me cache: every request a HIT
            async with httpx.AsyncClient(base_url=gateway.url) as client:
                await client.get(ROUTE, headers={"Authorization": authorization})
        assert gateway.process is not None
        latencies, errors, cpu_s = await load(
            gateway.url, gateway.process.pid, authorizations, arguments.warmup, arguments.seconds
        )
        await asyncio.sleep(1.5)  # the last batch's flush
        shipped, dropped = await gateway.record_counts()
    finally:
        await gateway.stop()
        await delete_exchange(exchange)
    return Result(
        recording, len(latencies), errors, arguments.seconds, latencies, cpu_s, shipped, dropped
    )


async def delete_exchange(exchange: str) -> None:
    """Remove this run's exchange (the gateway declared it to publish)."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()


async def recording_cost(requests: int) -> None:
    """The gateway's CPU cost of recording one request, in-process, without the noise of load.

    The middleware around an ASGI app that answers at once (as a request meets it: route,
    caller and request id in the scope), against that app alone; and building and encoding
    full batches, per record.
    """
    recorder = RequestRecorder(capacity=requests + 1, batch_size=BATCH)
    route = SimpleNamespace(path=ROUTE)
    admission = SimpleNamespace(caller=SimpleNamespace(user_id=uuid.uuid4().hex[:24]))

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = route
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        return None

    def scope() -> dict[str, Any]:
        return {
            "type": "http",
            "method": "GET",
            "path": ROUTE,
            "state": {"request_id": uuid.uuid4().hex, "admission": admission},
        }

    async def per_request_us(app: Any) -> float:
        scopes = [scope() for _ in range(requests)]
        started = time.process_time_ns()
        for each in scopes:
            await app(each, receive, send)
        return (time.process_time_ns() - started) / 1000 / requests

    middleware = RequestRecordingMiddleware(answer, recorder=recorder)
    await per_request_us(answer)  # warm-up
    bare = statistics.median([await per_request_us(answer) for _ in range(5)])
    wrapped = statistics.median([await per_request_us(middleware) for _ in range(5)])
    records = recorder.take_batch()
    started = time.process_time_ns()
    encoded = 0
    while encoded + BATCH <= len(records):
        encode_event(batch_event(records[encoded : encoded + BATCH], instance="bench"))
        encoded += BATCH
    encoding = (time.process_time_ns() - started) / 1000 / max(encoded, 1)
    print(
        f"recording cost per request, in-process: middleware {wrapped - bare:5.1f} µs, "
        f"batch building and encoding {encoding:5.1f} µs ({BATCH} records per batch): "
        f"{wrapped - bare + encoding:5.1f} µs in all"
    )


async def main(arguments: argparse.Namespace) -> None:
    """Alternate the two modes for the rounds asked; print each run, then the medians."""
    await recording_cost(20_000)
    key = Ed25519PrivateKey.generate()
    tokens = auth_overhead.mint_tokens(key, arguments.clients)
    server = grpc.aio.server()
    auth_pb2_grpc.add_AuthServiceServicer_to_server(StandInAuth(key), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(
        f"GET {ROUTE} (cache HIT), {arguments.clients} concurrent clients, "
        f"{arguments.seconds:g} s per run after {arguments.warmup:g} s of warm-up, "
        f"{arguments.rounds} rounds"
    )
    results: list[Result] = []
    try:
        for round_number in range(1, arguments.rounds + 1):
            # Alternate which mode goes first, so neither always runs on a warmer machine.
            modes = (False, True) if round_number % 2 else (True, False)
            for recording in modes:
                result = await run_once(recording, arguments, f"127.0.0.1:{port}", tokens)
                results.append(result)
                print(result.line(f"round {round_number}"), flush=True)
                if recording:
                    print(
                        f"{'':<9} records shipped {result.shipped:.0f}, "
                        f"dropped {result.dropped:.0f}",
                        flush=True,
                    )
    finally:
        await server.stop(None)
    for recording in (False, True):
        runs = [result for result in results if result.recording == recording]
        mode = "on " if recording else "off"
        print(
            f"median    recording {mode}  "
            f"{statistics.median(r.throughput for r in runs):7.0f} req/s   "
            f"p50 {statistics.median(r.quantile(50) for r in runs):6.2f} ms   "
            f"p95 {statistics.median(r.quantile(95) for r in runs):6.2f} ms   "
            f"p99 {statistics.median(r.quantile(99) for r in runs):6.2f} ms   "
            f"gateway CPU {statistics.median(r.cpu_per_request_us for r in runs):5.0f} µs/req"
        )
    off = statistics.median(r.throughput for r in results if not r.recording)
    on = statistics.median(r.throughput for r in results if r.recording)
    print(f"throughput with recording: {on / off * 100:.1f} % of without ({on - off:+.0f} req/s)")
    cpu_off = statistics.median(r.cpu_per_request_us for r in results if not r.recording)
    cpu_on = statistics.median(r.cpu_per_request_us for r in results if r.recording)
    print(
        f"gateway CPU per request with recording: {cpu_on - cpu_off:+.0f} µs "
        f"({(cpu_on / cpu_off - 1) * 100:+.1f} %)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    asyncio.run(main(parser.parse_args()))
