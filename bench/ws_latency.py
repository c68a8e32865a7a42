"""End-to-end latency from a task write to the WebSocket message that announces it.

Starts the suite the way `make run` does (free ports, a throw-away data dir, rate limits
lifted, an events exchange of its own, deleted afterwards), registers one user, opens a
WebSocket (`GET /api/v1/ws`) on gateway-1's own port, then makes `--writes` task writes
(PATCH /api/v1/tasks/{id}, a new title each) one at a time through gateway-2's own port (or
through Traefik with `--via traefik`), each after the previous one's message came. A reader
thread stamps each message as it is read off the socket; the latency of a write is from just
before its request is sent to the arrival of the `task.updated` message carrying its title:
the tasks service's outbox, RabbitMQ, gateway-1's own queue and the socket. The path crosses
from one gateway instance to the other, so it shows the cross-instance push of API.md.

Prints p50/p95/max of that latency and, for comparison, of the PATCH round trip itself;
a write whose message does not come within 10 s is counted as missing. Asserts nothing.

    .venv/bin/python bench/ws_latency.py [--writes 200] [--warmup 10] [--via gateway|traefik]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from taskmesh_localrun.testing import delete_event_topology
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

TASKS = "/api/v1/tasks"
PASSWORD = "correct horse battery"
MESSAGE_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 120.0


@dataclass
class Suite:
    """A runner started by this script, and where its parts are."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    exchange: str
    output: Path

    @property
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.data_dir / "localrun.json").read_text())
        return state

    def gateway_url(self, name: str) -> str:
        process = next(p for p in self.state["processes"] if p["name"] == name)
        return f"http://127.0.0.1:{process['ports']['http']}"

    def stop(self) -> None:
        """Ctrl-C the runner (it stops every child), then delete this run's exchange."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        delete_event_topology(self.exchange)


def start_suite(data_dir: Path) -> Suite:
    """Start the local runner on free ports and wait until /readyz answers 200."""
    exchange = f"bench.events.{uuid.uuid4().hex[:8]}"
    output = data_dir.parent / f"{data_dir.name}-runner.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskmesh_localrun",
                "--free-ports",
                "--data-dir",
                str(data_dir),
            ],
            env={
                **os.environ,
                "MONGODB_DATABASE_PREFIX": f"bench_{uuid.uuid4().hex[:6]}_",
                "EVENTS_EXCHANGE": exchange,
                "RATE_LIMIT_USER_PER_MIN": "1000000",
                "RATE_LIMIT_ANON_PER_MIN": "1000000",
            },
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    suite = Suite(process, data_dir, exchange, output)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = output.read_text(errors="replace")[-3000:]
            delete_event_topology(exchange)
            raise SystemExit(f"runner exited with {process.returncode}:\n{tail}")
        try:
            state = suite.state
            ready = httpx.get(f"{state['public_url']}/readyz", timeout=2).status_code == 200
            if state["status"] == "ready" and ready:
                return suite
        except (FileNotFoundError, ValueError, KeyError, httpx.HTTPError):
            pass
        time.sleep(0.5)
    suite.stop()
    raise SystemExit(f"suite not ready within {READY_TIMEOUT_S:g} s")


class Listener(threading.Thread):
    """Reads a socket until it closes, stamping each message with perf_counter()."""

    def __init__(self, connection: ClientConnection) -> None:
        super().__init__(daemon=True)
        self.connection = connection
        self.arrivals: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()

    def run(self) -> None:
        try:
            for raw in self.connection:
                self.arrivals.put((time.perf_counter(), json.loads(raw)))
        except ConnectionClosed:
            return

    def arrival_of(self, title: str, timeout_s: float) -> float | None:
        """When the task.updated message with this title arrived (None: not within timeout_s).

        Earlier messages (heartbeats, a late message of a missed write) are skipped.
        """
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                stamp, message = self.arrivals.get(timeout=left)
            except queue.Empty:
                return None
            data = message.get("data") or {}
            if message.get("type") == "task.updated" and data.get("title") == title:
                return stamp
        return None


@dataclass
class Measurements:
    push_ms: list[float] = field(default_factory=list)
    patch_ms: list[float] = field(default_factory=list)
    missing: int = 0
    failed: dict[str, int] = field(default_factory=dict)


def measure(
    client: httpx.Client,
    listener: Listener,
    auth: dict[str, str],
    task_id: str,
    writes: int,
    label: str,
) -> Measurements:
    """`writes` PATCHes, one at a time, each waited for on the socket."""
    result = Measurements()
    for index in range(writes):
        title = f"{label} {index} {uuid.uuid4().hex[:6]}"
        started = time.perf_counter()
        try:
            response = client.patch(f"{TASKS}/{task_id}", json={"title": title}, headers=auth)
        except httpx.HTTPError as error:
            kind = type(error).__name__
            result.failed[kind] = result.failed.get(kind, 0) + 1
            continue
        answered = time.perf_counter()
        if response.status_code != 200:
            status = str(response.status_code)
            result.failed[status] = result.failed.get(status, 0) + 1
            continue
        result.patch_ms.append((answered - started) * 1000)
        arrived = listener.arrival_of(title, MESSAGE_TIMEOUT_S)
        if arrived is None:
            result.missing += 1
        else:
            result.push_ms.append((arrived - started) * 1000)
    return result


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   max {ordered[-1]:7.1f} ms   n={len(ordered)}"


def run(suite: Suite, writes: int, warmup: int, via: str) -> None:
    socket_gateway = suite.gateway_url("gateway-1")
    write_url = suite.gateway_url("gateway-2") if via == "gateway" else suite.state["public_url"]
    with httpx.Client(base_url=write_url, timeout=30) as client:
        email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        response = client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "name": "Bench"},
        )
        response.raise_for_status()
        token = response.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        response = client.post(TASKS, json={"title": "bench"}, headers=auth)
        response.raise_for_status()
        task_id = response.json()["id"]

        ws_url = socket_gateway.replace("http://", "ws://", 1) + f"/api/v1/ws?access_token={token}"
        with connect(ws_url, proxy=None, open_timeout=10) as connection:
            listener = Listener(connection)
            listener.start()
            measure(client, listener, auth, task_id, warmup, "warm-up")
            result = measure(client, listener, auth, task_id, writes, "write")

    through = "gateway-2's own port" if via == "gateway" else "Traefik"
    print(f"socket on gateway-1 ({socket_gateway}); writes through {through} ({write_url})")
    print(f"{writes} PATCH /api/v1/tasks/{{id}} one at a time, after {warmup} untimed warm-ups")
    print(f"  write -> WebSocket message  {percentiles(result.push_ms)}")
    print(f"  PATCH round trip            {percentiles(result.patch_ms)}")
    if result.missing:
        print(f"  {result.missing} messages did not come within {MESSAGE_TIMEOUT_S:g} s")
    for status, count in result.failed.items():
        print(f"  {count} writes failed: {status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200, help="timed writes")
    parser.add_argument("--warmup", type=int, default=10, help="untimed writes first")
    parser.add_argument(
        "--via",
        choices=("gateway", "traefik"),
        default="gateway",
        help="make the writes through gateway-2's own port (default) or through Traefik",
    )
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="taskmesh-bench-") as tmp:
        suite = start_suite(Path(tmp) / "run")
        try:
            run(suite, args.writes, args.warmup, args.via)
        finally:
            suite.stop()
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
