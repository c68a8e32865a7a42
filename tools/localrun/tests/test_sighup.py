"""SIGHUP: the runner starts again every child that has exited, and leaves the others be;
from a terminal that was closed, it stops the run.

Real runners (`--only analytics`: embedded SecantusDB and the analytics service), driven
with the helpers the end-to-end tests use.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from taskmesh_localrun.testing import LocalRun, eventually, is_alive, json_lines

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    env = {**os.environ, "MONGODB_DATABASE_PREFIX": f"test_{secrets.token_hex(4)}_"}
    data_dir = tmp_path_factory.mktemp("restart") / "run"
    running = LocalRun(data_dir, ["--free-ports", "--only", "analytics"], env)
    running.wait_until_runner_ready()
    yield running
    running.close()


def pids(run: LocalRun) -> dict[str, int]:
    return {process["name"]: process["pid"] for process in run.state["processes"]}


def health(grpc_port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return int(reply.status)


def starts_logged(log: Path) -> int:
    return sum(1 for record in json_lines(log) if record.get("event") == "service.started")


def test_sighup_with_every_child_running_restarts_nothing(run: LocalRun) -> None:
    before = pids(run)

    run.restart_exited()

    assert eventually(lambda: "nothing to restart" in run.output())
    assert pids(run) == before
    assert all(is_alive(pid) for pid in before.values())


def test_stop_process_returns_once_the_runner_has_seen_the_child_exit(run: LocalRun) -> None:
    pid = run.process_info("analytics")["pid"]

    run.stop_process("analytics")

    assert not is_alive(pid)
    assert run.process_info("analytics")["returncode"] == 0
    assert run.state["status"] == "ready"
    assert is_alive(run.process_info("mongo")["pid"])
    run.restart_exited()


def test_sighup_restarts_an_exited_service_on_its_ports_once_it_is_ready(run: LocalRun) -> None:
    before = run.process_info("analytics")
    mongo_pid = run.process_info("mongo")["pid"]
    run.stop_process("analytics")

    run.restart_exited()

    after = run.process_info("analytics")
    assert after["pid"] != before["pid"]
    assert is_alive(after["pid"])
    assert (after["ports"], after["returncode"]) == (before["ports"], None)
    assert run.process_info("mongo")["pid"] == mongo_pid
    assert health(after["ports"]["grpc"]) == health_pb2.HealthCheckResponse.SERVING
    assert run.state["restarting"] == []
    assert f"restarted analytics (pid {after['pid']}); ready" in run.output()
    assert starts_logged(run.log("analytics")) >= 2, "the log is appended to, not truncated"


def test_sighup_restarts_the_embedded_mongodb_too(run: LocalRun) -> None:
    before = run.process_info("mongo")

    run.stop_process("mongo")
    run.restart_exited()

    after = run.process_info("mongo")
    assert after["pid"] != before["pid"]
    assert after["ports"] == before["ports"]
    assert is_alive(run.process_info("analytics")["pid"])


def test_sighup_from_a_closed_terminal_stops_the_run_and_every_child(tmp_path: Path) -> None:
    """Closing the terminal window sends SIGHUP too: then the run stops, as on Ctrl-C."""
    data_dir = tmp_path / "run"
    env = {**os.environ, "MONGODB_DATABASE_PREFIX": f"test_{secrets.token_hex(4)}_"}
    primary, secondary = os.openpty()
    argv = [sys.executable, "-m", "taskmesh_localrun", "--free-ports", "--only", "analytics"]
    runner = subprocess.Popen(
        [*argv, "--data-dir", str(data_dir)],
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,
        # The terminal becomes the runner's controlling terminal, as in a terminal window.
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(secondary)
    state = data_dir / "localrun.json"

    def ready() -> bool:
        read_what_is_there(primary)  # so that the runner never blocks writing to it
        return state.exists() and json.loads(state.read_text())["status"] == "ready"

    try:
        assert eventually(ready, timeout_s=60)
        children = [p["pid"] for p in json.loads(state.read_text())["processes"]]

        os.close(primary)  # the window closes: the kernel hangs the terminal up

        assert runner.wait(timeout=40) == 0
        assert not any(is_alive(pid) for pid in children)
        assert json.loads(state.read_text())["status"] == "stopped"
    finally:
        stop_whatever_is_left(runner, state)


def read_what_is_there(fd: int) -> None:
    """Read what a terminal's output holds now, without waiting for more."""
    while select.select([fd], [], [], 0)[0]:
        if not os.read(fd, 65536):
            return


def stop_whatever_is_left(runner: subprocess.Popen[bytes], state: Path) -> None:
    """After a failure: stop the runner as Ctrl-C would, then kill any child it left."""
    if runner.poll() is None:
        runner.send_signal(signal.SIGTERM)
        try:
            runner.wait(timeout=40)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.wait()
    if state.exists():
        for process in json.loads(state.read_text())["processes"]:
            if process["pid"] is not None and is_alive(process["pid"]):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process["pid"], signal.SIGKILL)
