"""`make run-<service>` and the runner's refusal to start without its dependencies."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from taskmesh_localrun.testing import LocalRun

pytestmark = pytest.mark.e2e


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_only_tasks_runs_the_tasks_service_alone_and_its_grpc_health_answers(
    start_suite: Callable[..., LocalRun],
) -> None:
    suite = start_suite("--only", "tasks")
    suite.wait_until_runner_ready()
    grpc_port = suite.process_info("tasks")["ports"]["grpc"]

    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )

    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert [p["name"] for p in suite.state["processes"]] == ["mongo", "tasks"]
    assert suite.state["public_url"] is None
    assert suite.close() == 0


def test_unreachable_rabbitmq_makes_the_runner_exit_non_zero_with_one_clear_line(
    tmp_path: Path,
) -> None:
    port = closed_port()
    env = {**os.environ, "AMQP_URL": f"amqp://guest:e2e-secret@127.0.0.1:{port}/"}

    # --no-web: only RabbitMQ is missing here, whether or not the web app was built.
    argv = ["--free-ports", "--no-web", "--data-dir", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "taskmesh_localrun", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1
    assert f"RabbitMQ is not reachable at amqp://guest:***@127.0.0.1:{port}/" in lines[0]
    assert "AMQP_URL" in lines[0]
    assert "e2e-secret" not in result.stdout + result.stderr
    assert not (tmp_path / "localrun.json").exists()
