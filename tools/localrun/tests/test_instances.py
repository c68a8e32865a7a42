"""`--instances SERVICE=N`: several instances of one service in a run; and where the links in
the notifications service's emails point."""

from __future__ import annotations

from pathlib import Path

import pytest
from taskmesh_localrun.options import RunOptions, parse_options
from taskmesh_localrun.plan import GrpcServing, PlanError, Tier, Tools, build_plan

TOOLS = Tools(
    python="/venv/bin/python", secantusd="/venv/bin/secantusd-py", traefik="/venv/bin/traefik"
)
BASE_ENV = {"PATH": "/usr/bin"}


def names(plan_processes: object) -> list[str]:
    return [spec.name for spec in plan_processes]  # type: ignore[attr-defined]


def test_the_option_is_repeatable_and_defaults_to_none() -> None:
    assert parse_options([]).instances == {}
    options = parse_options(["--instances", "notifications=2", "--instances", "tasks=3"])

    assert options.instances == {"notifications": 2, "tasks": 3}


@pytest.mark.parametrize(
    "value", ["notifications", "notifications=0", "notifications=two", "gateway=2", "mail=2"]
)
def test_a_malformed_value_is_a_usage_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_options(["--instances", value])

    assert exit_info.value.code == 2
    assert "--instances" in capsys.readouterr().err


def test_naming_a_service_twice_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_options(["--instances", "tasks=2", "--instances", "tasks=3"])

    assert "same service twice" in capsys.readouterr().err


def test_a_second_instance_follows_the_first_in_its_tier(tmp_path: Path) -> None:
    options = RunOptions(data_dir=tmp_path, instances={"notifications": 2})
    plan = build_plan(options, BASE_ENV, TOOLS)

    assert names(plan.processes) == [
        "mongo",
        "mailcatcher",
        "users",
        "tasks",
        "notifications",
        "notifications-2",
        "analytics",
        "auth",
        "gateway-1",
        "gateway-2",
        "web",
        "traefik",
    ]
    assert plan.process("notifications-2").tier == Tier.SERVICES
    assert plan.process("notifications-2").argv == (
        "/venv/bin/python",
        "-m",
        "taskmesh_notifications",
    )


def test_the_second_instance_has_ports_log_and_readiness_of_its_own(tmp_path: Path) -> None:
    options = RunOptions(data_dir=tmp_path, instances={"notifications": 2})
    plan = build_plan(options, BASE_ENV, TOOLS)
    second = plan.process("notifications-2")

    assert second.ports == {"grpc": 50154, "metrics": 9204}
    assert (second.env["GRPC_PORT"], second.env["METRICS_PORT"]) == ("50154", "9204")
    assert second.log_path == tmp_path / "logs" / "notifications-2.log"
    assert second.ready_check == GrpcServing("127.0.0.1:50154")
    assert plan.process("notifications").ports == {"grpc": 50054, "metrics": 9104}


def test_every_instance_shares_the_database_events_and_mail_of_the_first(tmp_path: Path) -> None:
    env = {**BASE_ENV, "MONGODB_DATABASE_PREFIX": "x_", "EVENTS_EXCHANGE": "x.events"}
    options = RunOptions(data_dir=tmp_path, free_ports=True, instances={"notifications": 3})
    plan = build_plan(options, env, TOOLS)
    first = plan.process("notifications").env
    own = {"GRPC_PORT", "METRICS_PORT"}

    for name in ("notifications-2", "notifications-3"):
        other = plan.process(name).env
        assert {k: v for k, v in other.items() if k not in own} == {
            k: v for k, v in first.items() if k not in own
        }
        assert other["MONGODB_DATABASE_PREFIX"] == "x_"
        assert other["SMTP_URL"] == first["SMTP_URL"]


def test_free_ports_stay_distinct_with_extra_instances(tmp_path: Path) -> None:
    options = RunOptions(data_dir=tmp_path, free_ports=True, instances={"tasks": 2, "users": 2})
    plan = build_plan(options, BASE_ENV, TOOLS)
    ports = [port for spec in plan.processes for port in spec.ports.values()]

    assert len(ports) == len(set(ports))


def test_the_gateways_call_the_first_instance(tmp_path: Path) -> None:
    options = RunOptions(data_dir=tmp_path, free_ports=True, instances={"notifications": 2})
    plan = build_plan(options, BASE_ENV, TOOLS)
    first_port = plan.process("notifications").ports["grpc"]

    for gateway in ("gateway-1", "gateway-2"):
        target = plan.process(gateway).env["NOTIFICATIONS_GRPC_TARGET"]
        assert target == f"127.0.0.1:{first_port}"


def test_only_one_service_may_run_several_instances_of_itself(tmp_path: Path) -> None:
    options = RunOptions(data_dir=tmp_path, only="notifications", instances={"notifications": 2})
    plan = build_plan(options, BASE_ENV, TOOLS)

    assert names(plan.processes) == ["mongo", "mailcatcher", "notifications", "notifications-2"]
    assert plan.ready_check == GrpcServing("127.0.0.1:50054")


def test_instances_of_a_service_the_run_does_not_start_are_a_plan_error(tmp_path: Path) -> None:
    options = RunOptions(data_dir=tmp_path, only="tasks", instances={"notifications": 2})

    with pytest.raises(PlanError, match="notifications"):
        build_plan(options, BASE_ENV, TOOLS)


def test_links_in_emails_point_at_this_runs_public_url(tmp_path: Path) -> None:
    options = RunOptions(data_dir=tmp_path, free_ports=True, instances={"notifications": 2})
    plan = build_plan(options, BASE_ENV, TOOLS)

    for name in ("notifications", "notifications-2"):
        assert plan.process(name).env["PUBLIC_BASE_URL"] == plan.public_url
    assert "PUBLIC_BASE_URL" not in plan.process("tasks").env


def test_a_public_base_url_of_the_environment_wins(tmp_path: Path) -> None:
    env = {**BASE_ENV, "PUBLIC_BASE_URL": "https://taskmesh.example"}
    plan = build_plan(RunOptions(data_dir=tmp_path), env, TOOLS)

    assert plan.process("notifications").env["PUBLIC_BASE_URL"] == "https://taskmesh.example"


def test_notifications_alone_keeps_the_default_public_base_url(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path, only="notifications"), BASE_ENV, TOOLS)

    assert "PUBLIC_BASE_URL" not in plan.process("notifications").env
