"""Probing whether a process (or the whole suite) is ready to serve."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, assert_never

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo import AsyncMongoClient

from taskmesh_localrun.plan import GrpcServing, HttpOk, MongoPing, ReadyCheck, TcpListening
from taskmesh_localrun.ports import LOCAL_HOST

PROBE_TIMEOUT_S = 2.0
PROBE_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Probe:
    """The outcome of one readiness probe."""

    ready: bool
    detail: str


async def _probe_http(check: HttpOk) -> Probe:
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            response = await client.get(check.url)
    except httpx.HTTPError as exc:
        return Probe(False, f"GET {check.url}: {type(exc).__name__}")
    body = " ".join(response.text.split())[:400]
    return Probe(response.status_code == 200, f"GET {check.url}: {response.status_code} {body}")


async def _probe_grpc(check: GrpcServing) -> Probe:
    async with grpc.aio.insecure_channel(check.target) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=PROBE_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            return Probe(False, f"gRPC health at {check.target}: {exc.code().name}")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return Probe(status == "SERVING", f"gRPC health at {check.target}: {status}")


async def _probe_mongo(check: MongoPing) -> Probe:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        check.url, serverSelectionTimeoutMS=int(PROBE_TIMEOUT_S * 1000)
    )
    try:
        await client.admin.command("ping")
    except Exception as exc:  # not answering yet, whatever the reason
        return Probe(False, f"MongoDB ping at {check.url}: {type(exc).__name__}")
    finally:
        await client.close()
    return Probe(True, f"MongoDB ping at {check.url}: ok")


async def _probe_tcp(check: TcpListening) -> Probe:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(LOCAL_HOST, check.port), PROBE_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        return Probe(False, f"nothing listens on {LOCAL_HOST}:{check.port}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Probe(True, f"{LOCAL_HOST}:{check.port} accepts connections")


async def probe(check: ReadyCheck) -> Probe:
    """Probe once."""
    match check:
        case HttpOk():
            return await _probe_http(check)
        case GrpcServing():
            return await _probe_grpc(check)
        case MongoPing():
            return await _probe_mongo(check)
        case TcpListening():
            return await _probe_tcp(check)
        case _:
            assert_never(check)


async def wait_until_ready(check: ReadyCheck, timeout_s: float) -> Probe:
    """Probe until ready or timeout_s passed; return the last probe."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = await probe(check)
        if result.ready or loop.time() >= deadline:
            return result
        await asyncio.sleep(PROBE_INTERVAL_S)
