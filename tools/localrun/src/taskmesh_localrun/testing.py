"""Driving a runner from tests: start `python -m taskmesh_localrun`, read its state, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from taskmesh_chassis.events import EventSettings
from taskmesh_chassis.events.topology import delete_service_queues

from taskmesh_localrun.options import SERVICES
from taskmesh_localrun.preflight import DEFAULT_AMQP_URL

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 40.0
TEST_PASSWORD = "correct horse battery staple"  # noqa: S105 - the password of test accounts


@dataclass(frozen=True)
class ApiUser:
    """A user registered through the public API, with the access token it was given."""

    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header acting as this user."""
        return {"Authorization": f"Bearer {self.token}"}


def register_user(client: httpx.Client, name: str = "Ada") -> ApiUser:
    """Register a fresh account (unique email, TEST_PASSWORD) and return it."""
    email = f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post(
        "/api/v1/auth/register", json={"email": email, "password": TEST_PASSWORD, "name": name}
    )
    if response.status_code != 201:
        raise LocalRunError(f"register answered {response.status_code}: {response.text}")
    body = response.json()
    return ApiUser(body["user"]["id"], body["access_token"])


def delete_event_topology(exchange: str) -> None:
    """Delete a stopped suite's own events exchange and every service's queues on it.

    Queue names and retry delays are those the suite's services derived from the same
    environment, and the broker the one the runner checked (`AMQP_URL`); deleting what does
    not exist is no error.
    """
    settings = EventSettings(events_exchange=exchange)
    amqp_url = os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL

    async def delete() -> None:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            for service in SERVICES:
                await delete_service_queues(
                    channel, settings.event_topology, service, settings.retry_policy
                )
            await channel.exchange_delete(exchange)

    asyncio.run(delete())


class LocalRunError(Exception):
    """The runner did not do what the test waited for; the message carries its output."""


def is_alive(pid: int) -> bool:
    """Whether pid is a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a log file, skipping lines that are not JSON."""
    records = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll check until it is true or timeout_s passed; return its last value."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class LocalRun:
    """A running `python -m taskmesh_localrun` and what its localrun.json says."""

    def __init__(
        self, data_dir: Path, args: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.output_path = data_dir.parent / f"{data_dir.name}-runner.out"
        data_dir.mkdir(parents=True, exist_ok=True)
        with self.output_path.open("wb") as output:
            self.process = subprocess.Popen(  # noqa: S603 - argv is ours, not user input
                [sys.executable, "-m", "taskmesh_localrun", "--data-dir", str(data_dir), *args],
                env=dict(os.environ if env is None else env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    @property
    def state(self) -> dict[str, Any]:
        """localrun.json as it is now."""
        state: dict[str, Any] = json.loads((self.data_dir / "localrun.json").read_text())
        return state

    @property
    def url(self) -> str:
        """The public URL (Traefik)."""
        return str(self.state["public_url"])

    def output(self, last_chars: int = 4000) -> str:
        """The end of what the runner printed so far."""
        return self.output_path.read_text(errors="replace")[-last_chars:]

    def process_info(self, name: str) -> dict[str, Any]:
        """The localrun.json entry of one process."""
        info: dict[str, Any] = next(p for p in self.state["processes"] if p["name"] == name)
        return info

    def log(self, name: str) -> Path:
        """The log file of one process."""
        return Path(self.process_info(name)["log"])

    def pids(self) -> list[int]:
        """Every child pid the runner recorded."""
        return [int(p["pid"]) for p in self.state["processes"] if p["pid"] is not None]

    def ports(self) -> list[int]:
        """Every port the runner planned."""
        return [int(port) for p in self.state["processes"] for port in p["ports"].values()]

    def wait_until(self, ready: Callable[[], bool], timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait for ready(); raise LocalRunError if the runner exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise LocalRunError(
                    f"runner exited with {self.process.returncode} before it was ready:\n"
                    f"{self.output()}"
                )
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError, httpx.HTTPError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise LocalRunError(f"not ready within {timeout_s:g} s:\n{self.output()}")
            time.sleep(0.3)

    def wait_until_readyz(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until the runner has finished starting and /readyz through Traefik says 200.

        Both: readyz can answer 200 a moment before the runner notices; a child dying in
        that moment would count as a failed start-up, not as a loss while running.
        """
        self.wait_until(
            lambda: (
                self.state["status"] == "ready"
                and httpx.get(f"{self.url}/readyz", timeout=3).status_code == 200
            ),
            timeout_s,
        )

    def wait_until_runner_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until the runner itself says every part is ready."""
        self.wait_until(lambda: self.state["status"] == "ready", timeout_s)

    def stop_process(self, name: str, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM one child's process group; return once the runner has seen it exit."""
        pid = int(self.process_info(name)["pid"])
        os.killpg(pid, signal.SIGTERM)  # each child leads its own process group
        self.wait_until(
            lambda: self.process_info(name)["returncode"] is not None and not is_alive(pid),
            timeout_s,
        )

    def restart_exited(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """SIGHUP the runner; return once every child runs again, restarted ones ready."""
        if self.state["status"] != "ready":
            raise LocalRunError(f"the runner is {self.state['status']}, not ready")
        self.process.send_signal(signal.SIGHUP)
        self.wait_until(self._all_running, timeout_s)

    def _all_running(self) -> bool:
        state = self.state
        return state["restarting"] == [] and all(
            process["pid"] is not None
            and process["returncode"] is None
            and is_alive(process["pid"])
            for process in state["processes"]
        )

    def interrupt(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Ctrl-C the runner and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise LocalRunError(
                f"runner did not stop within {timeout_s:g} s:\n{self.output()}"
            ) from None

    def survivors(self) -> list[int]:
        """Recorded child pids that are still alive."""
        try:
            return [pid for pid in self.pids() if is_alive(pid)]
        except FileNotFoundError:
            return []

    def kill_survivors(self) -> None:
        """Last resort, so one failed test leaves nothing running for the next."""
        for pid in self.survivors():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def close(self) -> int:
        """Stop it, whatever state it is in; return the runner's exit status."""
        try:
            return self.interrupt()
        finally:
            self.kill_survivors()
