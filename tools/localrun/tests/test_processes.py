"""The supervisor: output to log files, deaths noticed, everything stopped."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

import pytest
from taskmesh_localrun.console import Console
from taskmesh_localrun.plan import ProcessSpec, Tier
from taskmesh_localrun.processes import Supervisor, describe_exit
from taskmesh_localrun.testing import is_alive


def python_child(tmp_path: Path, name: str, code: str, tier: Tier = Tier.SERVICES) -> ProcessSpec:
    return ProcessSpec(
        name=name,
        tier=tier,
        argv=(sys.executable, "-u", "-c", code),
        env={"PATH": "/usr/bin:/bin"},
        ports={},
        log_path=tmp_path / "logs" / f"{name}.log",
    )


def logged(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def first_output(path: Path) -> str:
    for _ in range(200):
        if text := logged(path).strip():
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing in {path}")


def quiet_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(out=out, err=out), out


async def test_child_output_goes_to_its_log_file_and_the_console(tmp_path: Path) -> None:
    console, out = quiet_console()
    supervisor = Supervisor(console, tmp_path)
    child = await supervisor.start(python_child(tmp_path, "echo", "print('hello from echo')"))

    await child.wait()

    assert logged(child.spec.log_path) == "hello from echo\n"
    assert "echo" in out.getvalue()
    assert "| hello from echo" in out.getvalue()


async def test_a_child_that_dies_on_its_own_is_reported(tmp_path: Path) -> None:
    console, _ = quiet_console()
    died: list[str] = []
    supervisor = Supervisor(console, tmp_path, lambda child: died.append(child.name))
    await supervisor.start(python_child(tmp_path, "crasher", "raise SystemExit(3)"))

    await asyncio.wait_for(supervisor.unexpected_exit.wait(), 10)

    assert died == ["crasher"]
    assert [child.returncode for child in supervisor.exited()] == [3]


async def test_stop_all_kills_a_child_that_ignores_sigterm_and_its_grandchild(
    tmp_path: Path,
) -> None:
    console, _ = quiet_console()
    supervisor = Supervisor(console, tmp_path)
    stubborn = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(grandchild.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = await supervisor.start(python_child(tmp_path, "stubborn", stubborn))
    grandchild_pid = int(await first_output(child.spec.log_path))

    await supervisor.stop_all(grace_s=0.5)

    assert child.returncode == -9
    await asyncio.sleep(0.2)
    assert not is_alive(grandchild_pid)


async def test_stop_all_stops_the_last_started_tier_first(tmp_path: Path) -> None:
    console, _ = quiet_console()
    supervisor = Supervisor(console, tmp_path)
    stopped_at = tmp_path / "order"
    code = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    open({str(stopped_at)!r}, 'a').write(sys.argv[1] + '\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    for name, tier in (("db", Tier.INFRASTRUCTURE), ("api", Tier.SERVICES), ("edge", Tier.EDGE)):
        spec = python_child(tmp_path, name, code, tier)
        spec = ProcessSpec(
            name=spec.name,
            tier=spec.tier,
            argv=(*spec.argv, name),
            env=spec.env,
            ports=spec.ports,
            log_path=spec.log_path,
        )
        child = await supervisor.start(spec)
        await first_output(child.spec.log_path)

    await supervisor.stop_all()

    assert logged(stopped_at).split() == ["edge", "api", "db"]
    assert supervisor.exited() == []


async def test_restart_starts_an_exited_child_again_appending_to_its_log(tmp_path: Path) -> None:
    console, _ = quiet_console()
    died: list[int | None] = []
    supervisor = Supervisor(console, tmp_path, lambda child: died.append(child.returncode))
    code = "import os, sys\nprint('run', os.getpid(), flush=True)\nsys.exit(3)\n"
    child = await supervisor.start(python_child(tmp_path, "flaky", code))
    await asyncio.wait_for(supervisor.unexpected_exit.wait(), 10)
    first_pid = child.pid

    await supervisor.restart(child)
    await asyncio.wait_for(child.wait(), 10)
    for _ in range(100):  # the watcher reports the second exit too
        if len(died) == 2:
            break
        await asyncio.sleep(0.05)

    runs = logged(child.spec.log_path).splitlines()
    assert runs == [f"run {first_pid}", f"run {child.pid}"]
    assert child.pid != first_pid
    assert died == [3, 3]


async def test_restart_refuses_a_child_that_is_still_running(tmp_path: Path) -> None:
    console, _ = quiet_console()
    supervisor = Supervisor(console, tmp_path)
    child = await supervisor.start(python_child(tmp_path, "sleeper", "import time; time.sleep(60)"))

    with pytest.raises(ValueError, match="still running"):
        await supervisor.restart(child)

    await supervisor.stop_all(grace_s=1)


def test_exit_statuses_read_as_codes_or_signals() -> None:
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-15) == "signal SIGTERM"
