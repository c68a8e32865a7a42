"""Preflight: unreachable dependencies and taken ports are named in one line each."""

from __future__ import annotations

import socket
from pathlib import Path

from taskmesh_localrun.options import RunOptions
from taskmesh_localrun.plan import Tools, build_plan
from taskmesh_localrun.preflight import (
    check_ports,
    check_rabbitmq,
    check_redis,
    check_web_build,
)
from taskmesh_localrun.urls import redact_url

TOOLS = Tools(python="python", secantusd="secantusd-py", traefik="traefik")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_unreachable_rabbitmq_is_one_line_with_the_fix_and_no_password() -> None:
    port = closed_port()

    problem = await check_rabbitmq(f"amqp://guest:s3cr3t-pw@127.0.0.1:{port}/")

    assert problem is not None
    assert "\n" not in problem
    assert problem.startswith(f"RabbitMQ is not reachable at amqp://guest:***@127.0.0.1:{port}/")
    assert "AMQP_URL" in problem
    assert "s3cr3t-pw" not in problem


async def test_unreachable_redis_is_one_line_without_the_password() -> None:
    port = closed_port()

    problem = await check_redis(f"redis://:hunter22@127.0.0.1:{port}/0")

    assert problem is not None
    assert problem.startswith(f"Redis is not reachable at redis://:***@127.0.0.1:{port}/0")
    assert "REDIS_URL" in problem
    assert "hunter22" not in problem


def test_a_taken_port_is_named_with_the_process_that_needs_it(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        taken = squatter.getsockname()[1]
        plan = build_plan(RunOptions(data_dir=tmp_path), {"PUBLIC_PORT": str(taken)}, TOOLS)

        problems = [p for p in check_ports(plan) if str(taken) in p]

    assert problems == [
        f"Port {taken} (traefik public) is already in use on 127.0.0.1 — set PUBLIC_PORT, "
        "or run with --free-ports"
    ]


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("amqp://guest:guest@127.0.0.1:5672/") == "amqp://guest:***@127.0.0.1:5672/"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("mongodb://u:p%40ss@db:27017/?x=1") == "mongodb://u:***@db:27017/?x=1"


def test_a_missing_web_build_is_one_line_saying_how_to_build_it(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    plan = build_plan(RunOptions(data_dir=tmp_path, web_dist=dist), {}, TOOLS)

    missing = check_web_build(plan)
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html>")
    built = check_web_build(plan)

    assert missing == (
        f"The web app is not built: run `make web` ({dist}/index.html is missing), "
        "or run with --no-web"
    )
    assert built is None


def test_no_build_is_needed_without_the_web_app(tmp_path: Path) -> None:
    missing = tmp_path / "dist"
    no_web = build_plan(RunOptions(data_dir=tmp_path, web=False, web_dist=missing), {}, TOOLS)
    alone = build_plan(RunOptions(data_dir=tmp_path, only="gateway", web_dist=missing), {}, TOOLS)

    assert check_web_build(no_web) is None
    assert check_web_build(alone) is None
    assert "web" not in [spec.name for spec in (*no_web.processes, *alone.processes)]
