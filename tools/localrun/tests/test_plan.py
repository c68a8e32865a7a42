"""The plan: which processes start, on which ports, with which environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from taskmesh_localrun.options import RunOptions, parse_options
from taskmesh_localrun.plan import GrpcServing, HttpOk, PlanError, Tier, Tools, build_plan

TOOLS = Tools(
    python="/venv/bin/python", secantusd="/venv/bin/secantusd-py", traefik="/venv/bin/traefik"
)
BASE_ENV = {"PATH": "/usr/bin", "RATE_LIMIT_USER_PER_MIN": "7"}


def names(plan_processes: object) -> list[str]:
    return [spec.name for spec in plan_processes]  # type: ignore[attr-defined]


def test_full_run_starts_infrastructure_services_auth_gateways_then_traefik(
    tmp_path: Path,
) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path), BASE_ENV, TOOLS)

    assert names(plan.processes) == [
        "mongo",
        "mailcatcher",
        "users",
        "tasks",
        "notifications",
        "analytics",
        "auth",
        "gateway-1",
        "gateway-2",
        "web",
        "traefik",
    ]
    assert [spec.tier for spec in plan.processes] == sorted(spec.tier for spec in plan.processes)


def test_default_ports_follow_docs_processes_md(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path), BASE_ENV, TOOLS)

    assert plan.process("tasks").ports == {"grpc": 50053, "metrics": 9103}
    assert plan.process("gateway-1").ports == {"http": 8001}
    assert plan.process("gateway-2").ports == {"http": 8002}
    assert plan.process("mongo").ports == {"mongodb": 27027}
    assert plan.process("mailcatcher").ports == {"smtp": 1025}
    assert plan.process("web").ports == {"http": 8090}
    assert plan.public_url == "http://127.0.0.1:8000"
    assert plan.ready_check == HttpOk("http://127.0.0.1:8000/readyz")


def test_service_env_is_the_runners_env_plus_its_ports_and_infrastructure(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path), BASE_ENV, TOOLS)
    env = plan.process("auth").env

    assert env["RATE_LIMIT_USER_PER_MIN"] == "7"
    assert env["PATH"] == "/usr/bin"
    assert env["GRPC_PORT"] == "50051"
    assert env["METRICS_PORT"] == "9101"
    assert env["MONGODB_URL"] == "mongodb://127.0.0.1:27027/"
    assert env["SMTP_URL"] == "smtp://127.0.0.1:1025"
    assert plan.process("auth").argv == ("/venv/bin/python", "-m", "taskmesh_auth")


def test_gateways_get_instance_names_ports_and_every_service_target(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path, free_ports=True), BASE_ENV, TOOLS)
    gateway = plan.process("gateway-2")

    assert gateway.env["INSTANCE_NAME"] == "gateway-2"
    assert gateway.env["GATEWAY_PORT"] == str(gateway.ports["http"])
    for service in ("auth", "users", "tasks", "notifications", "analytics"):
        grpc_port = plan.process(service).ports["grpc"]
        assert gateway.env[f"{service.upper()}_GRPC_TARGET"] == f"127.0.0.1:{grpc_port}"


def test_free_ports_are_all_distinct_and_not_the_defaults(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path, free_ports=True), BASE_ENV, TOOLS)
    ports = [port for spec in plan.processes for port in spec.ports.values()]

    assert len(ports) == len(set(ports))
    assert plan.public_port not in (None, 8000)


def test_public_port_from_env_wins_even_with_free_ports(tmp_path: Path) -> None:
    env = {**BASE_ENV, "PUBLIC_PORT": "18123"}
    plan = build_plan(RunOptions(data_dir=tmp_path, free_ports=True), env, TOOLS)

    assert plan.public_url == "http://127.0.0.1:18123"
    assert plan.process("traefik").ports["public"] == 18123


def test_malformed_public_port_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="PUBLIC_PORT"):
        build_plan(RunOptions(data_dir=tmp_path), {"PUBLIC_PORT": "eighty"}, TOOLS)


def test_mongodb_url_from_env_means_no_embedded_mongo(tmp_path: Path) -> None:
    env = {**BASE_ENV, "MONGODB_URL": "mongodb://db.example:27017/"}
    plan = build_plan(RunOptions(data_dir=tmp_path), env, TOOLS)

    assert "mongo" not in names(plan.processes)
    assert not plan.embedded_mongo
    assert plan.process("tasks").env["MONGODB_URL"] == "mongodb://db.example:27017/"


def test_smtp_url_from_env_means_no_mail_catcher(tmp_path: Path) -> None:
    env = {**BASE_ENV, "SMTP_URL": "smtp://mail.example:25"}
    plan = build_plan(RunOptions(data_dir=tmp_path), env, TOOLS)

    assert "mailcatcher" not in names(plan.processes)
    assert plan.process("notifications").env["SMTP_URL"] == "smtp://mail.example:25"


def test_embedded_mongo_keeps_its_data_in_the_data_dir(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path), BASE_ENV, TOOLS)
    argv = plan.process("mongo").argv

    assert argv[0] == "/venv/bin/secantusd-py"
    assert argv[argv.index("--storage-path") + 1] == str(tmp_path / "mongo")
    assert argv[argv.index("--port") + 1] == "27027"


def test_only_tasks_runs_tasks_with_mongo_and_nothing_else(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path, only="tasks"), BASE_ENV, TOOLS)

    assert names(plan.processes) == ["mongo", "tasks"]
    assert plan.public_url is None
    assert plan.ready_check == GrpcServing("127.0.0.1:50053")


def test_only_notifications_also_runs_the_mail_catcher(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path, only="notifications"), BASE_ENV, TOOLS)

    assert names(plan.processes) == ["mongo", "mailcatcher", "notifications"]


def test_only_gateway_runs_one_gateway_without_mongo(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path, only="gateway"), BASE_ENV, TOOLS)

    assert names(plan.processes) == ["gateway-1"]
    assert plan.process("gateway-1").tier == Tier.GATEWAYS
    assert plan.ready_check == HttpOk("http://127.0.0.1:8001/healthz")


def test_gateway_count_is_configurable(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path, gateways=3), BASE_ENV, TOOLS)

    assert [n for n in names(plan.processes) if n.startswith("gateway")] == [
        "gateway-1",
        "gateway-2",
        "gateway-3",
    ]
    assert plan.gateway_urls[2] == "http://127.0.0.1:8003"


def test_logs_go_to_the_data_dir_one_file_per_process(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path), BASE_ENV, TOOLS)

    assert plan.process("gateway-1").log_path == tmp_path / "logs" / "gateway-1.log"
    assert plan.process("traefik").log_path == tmp_path / "logs" / "traefik.log"


def test_every_service_verifies_tokens_against_this_runs_auth(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path, free_ports=True), BASE_ENV, TOOLS)
    auth_target = f"127.0.0.1:{plan.process('auth').ports['grpc']}"

    for service in ("auth", "users", "tasks", "notifications", "analytics"):
        assert plan.process(service).env["AUTH_GRPC_TARGET"] == auth_target


def test_auth_keeps_its_development_signing_key_in_the_data_dir(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path), BASE_ENV, TOOLS)

    assert plan.process("auth").env["DEV_SIGNING_KEY_PATH"] == str(
        tmp_path / "auth" / "dev-signing-key.pem"
    )
    assert "DEV_SIGNING_KEY_PATH" not in plan.process("tasks").env


def test_auth_starts_in_a_tier_of_its_own_after_the_services_that_consume_its_events(
    tmp_path: Path,
) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path), BASE_ENV, TOOLS)

    assert plan.process("auth").tier == Tier.AUTH
    for service in ("users", "tasks", "notifications", "analytics"):
        assert plan.process(service).tier == Tier.SERVICES
    assert Tier.SERVICES < Tier.AUTH < Tier.GATEWAYS


def test_every_service_is_waited_for_on_its_grpc_health_check(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path, free_ports=True), BASE_ENV, TOOLS)

    for service in ("auth", "users", "tasks", "notifications", "analytics"):
        grpc_port = plan.process(service).ports["grpc"]
        assert plan.process(service).ready_check == GrpcServing(f"127.0.0.1:{grpc_port}")


def test_auth_and_the_gateways_reach_this_runs_users_service(
    tmp_path: Path,
) -> None:
    env = {**BASE_ENV, "USERS_GRPC_TARGET": "users.example:1"}
    plan = build_plan(RunOptions(data_dir=tmp_path, free_ports=True), env, TOOLS)
    users_target = f"127.0.0.1:{plan.process('users').ports['grpc']}"

    assert plan.process("auth").env["USERS_GRPC_TARGET"] == users_target
    assert plan.process("gateway-1").env["USERS_GRPC_TARGET"] == users_target
    assert plan.process("tasks").env["USERS_GRPC_TARGET"] == "users.example:1"


def test_auth_alone_keeps_the_users_target_of_the_environment(tmp_path: Path) -> None:
    plan = build_plan(RunOptions(data_dir=tmp_path, only="auth"), BASE_ENV, TOOLS)

    assert names(plan.processes) == ["mongo", "auth"]
    assert "USERS_GRPC_TARGET" not in plan.process("auth").env
    assert plan.process("auth").env["AUTH_GRPC_TARGET"] == "127.0.0.1:50051"


def test_the_web_app_is_served_from_its_build_beside_the_gateways(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    plan = build_plan(RunOptions(data_dir=tmp_path, web_dist=dist), BASE_ENV, TOOLS)
    web = plan.process("web")

    assert web.tier == Tier.GATEWAYS
    assert web.argv == (
        *("/venv/bin/python", "-m", "taskmesh_localrun.webapp"),
        *("--host", "127.0.0.1", "--port", "8090", "--dist", str(dist)),
    )
    assert web.ready_check == HttpOk("http://127.0.0.1:8090/")
    assert web.log_path == tmp_path / "logs" / "web.log"
    assert (plan.web_url, plan.web_dist) == ("http://127.0.0.1:8090", dist)


def test_no_web_and_runs_without_traefik_serve_no_web_app(tmp_path: Path) -> None:
    for options in (
        RunOptions(data_dir=tmp_path, web=False),
        RunOptions(data_dir=tmp_path, only="gateway"),
    ):
        plan = build_plan(options, BASE_ENV, TOOLS)

        assert "web" not in names(plan.processes)
        assert (plan.web_url, plan.web_dist) == (None, None)


def test_the_web_options_default_to_this_checkouts_build() -> None:
    checkout = Path(__file__).resolve().parents[3]

    assert parse_options([]).web is True
    assert parse_options([]).web_dist == checkout / "web" / "dist"
    assert parse_options(["--no-web"]).web is False
    assert parse_options(["--web-dist", "/srv/dist"]).web_dist == Path("/srv/dist")
