"""The Restarter behind SIGHUP: exited children start again and are waited for; others stay."""

from __future__ import annotations

import asyncio
import io
import signal
import sys
from pathlib import Path

from taskmesh_localrun.console import Console
from taskmesh_localrun.plan import ProcessSpec, ReadyCheck, TcpListening, Tier
from taskmesh_localrun.ports import PortPicker
from taskmesh_localrun.processes import Child, Supervisor
from taskmesh_localrun.restarts import Restarter
from taskmesh_localrun.testing import is_alive

SLEEPER = "import time\nprint('up', flush=True)\ntime.sleep(60)\n"


def listener(port: int) -> str:
    return (
        "import socket, time\n"
        "server = socket.socket()\n"
        "server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"server.bind(('127.0.0.1', {port}))\n"
        "server.listen()\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )


def spec(tmp_path: Path, name: str, code: str, ready_check: ReadyCheck | None) -> ProcessSpec:
    return ProcessSpec(
        name=name,
        tier=Tier.SERVICES,
        argv=(sys.executable, "-u", "-c", code),
        env={"PATH": "/usr/bin:/bin"},
        ports={},
        log_path=tmp_path / "logs" / f"{name}.log",
        ready_check=ready_check,
    )


def free_port() -> int:
    return PortPicker(free_ports=True).pick(0)


class Harness:
    """A supervisor, a restarter over it, and what they said."""

    def __init__(self, tmp_path: Path, ready_timeout_s: float = 10.0) -> None:
        self.tmp_path = tmp_path
        self.out = io.StringIO()
        console = Console(out=self.out, err=self.out)
        self.supervisor = Supervisor(console, tmp_path)
        self.stop_requested = asyncio.Event()
        self.changes: list[list[str]] = []
        self.restarter = Restarter(
            self.supervisor,
            console,
            ready_timeout_s=ready_timeout_s,
            stop_requested=self.stop_requested,
            on_change=lambda: self.changes.append(list(self.restarter.restarting)),
        )

    async def start(self, name: str, code: str, ready_check: ReadyCheck | None = None) -> Child:
        child = await self.supervisor.start(spec(self.tmp_path, name, code, ready_check))
        for _ in range(200):
            if child.spec.log_path.exists() and child.spec.log_path.read_text():
                return child
            await asyncio.sleep(0.05)
        raise AssertionError(f"{name} never started")

    async def stopped(self, child: Child) -> Child:
        child.signal_group(signal.SIGTERM)
        await asyncio.wait_for(child.wait(), 10)
        return child


async def test_an_exited_child_runs_again_once_ready_and_a_running_one_is_left_alone(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path)
    port = free_port()
    service = await harness.start("service", listener(port), TcpListening(port))
    bystander = await harness.start("bystander", SLEEPER)
    bystander_pid = bystander.pid
    old_pid = (await harness.stopped(service)).pid

    await harness.restarter.restart_exited()

    assert service.returncode is None
    assert service.pid != old_pid
    assert service.pid is not None
    assert is_alive(service.pid)
    assert bystander.pid == bystander_pid
    assert harness.changes == [["service"], []]
    assert harness.restarter.restarting == []
    assert f"restarted service (pid {service.pid}); ready" in harness.out.getvalue()
    await harness.supervisor.stop_all(grace_s=1)


async def test_with_nothing_exited_nothing_happens(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    child = await harness.start("sleeper", SLEEPER)
    pid = child.pid

    await harness.restarter.restart_exited()

    assert child.pid == pid
    assert harness.changes == []
    assert "nothing to restart" in harness.out.getvalue()
    await harness.supervisor.stop_all(grace_s=1)


async def test_a_child_not_ready_in_time_is_stopped_again(tmp_path: Path) -> None:
    harness = Harness(tmp_path, ready_timeout_s=0.5)
    never_listens = TcpListening(free_port())
    child = await harness.stopped(await harness.start("mute", SLEEPER, never_listens))

    await harness.restarter.restart_exited()

    assert child.returncode is not None
    assert "mute is not ready 0.5 s after its restart" in harness.out.getvalue()
    assert harness.restarter.restarting == []


async def test_a_child_that_exits_again_is_left_exited(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    crasher = "print('up', flush=True)\nraise SystemExit(3)\n"
    child = await harness.start("crasher", crasher, TcpListening(free_port()))
    await asyncio.wait_for(child.wait(), 10)

    await harness.restarter.restart_exited()

    await child.wait()  # its output copied
    assert child.returncode == 3
    assert "crasher exited again right after its restart" in harness.out.getvalue()
    assert len(child.spec.log_path.read_text().splitlines()) == 2, "one line per run"


async def test_nothing_restarts_once_a_stop_is_requested(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    child = await harness.stopped(await harness.start("sleeper", SLEEPER))
    pid = child.pid
    harness.stop_requested.set()

    await harness.restarter.restart_exited()

    assert (child.pid, child.returncode is not None) == (pid, True)
    assert harness.restarter.restarting == []
