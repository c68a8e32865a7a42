"""What to start, in which order, on which ports and with which environment."""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from taskmesh_localrun.options import SERVICES, RunOptions
from taskmesh_localrun.ports import (
    DEFAULT_GATEWAY_BASE_PORT,
    DEFAULT_GRPC_PORTS,
    DEFAULT_METRICS_PORTS,
    DEFAULT_MONGO_PORT,
    DEFAULT_PUBLIC_PORT,
    DEFAULT_SMTP_PORT,
    DEFAULT_TRAEFIK_API_PORT,
    DEFAULT_WEB_PORT,
    EXTRA_INSTANCE_PORT_STEP,
    LOCAL_HOST,
    PortPicker,
)

MONGO_NOOP_HEARTBEAT_S = 10  # mongod's default; keeps quiet change streams resumable


class PlanError(Exception):
    """The configuration cannot be turned into a plan (e.g. a malformed PUBLIC_PORT)."""


class Tier(IntEnum):
    """Start order; stopping goes the other way.

    AUTH comes after the other services: auth publishes `user.*` events from its first
    moments (the bootstrap admin's `user.registered`), and the topic exchange keeps an event
    only for the queues that exist when it is published, which the consuming services
    declare as they start. The others need nothing of auth to start: they fetch its keys
    on the first authenticated call.

    GATEWAYS also holds the web app's static server: like the gateways, something Traefik
    routes to, and ready before Traefik's first request.
    """

    INFRASTRUCTURE = 0
    SERVICES = 1
    AUTH = 2
    GATEWAYS = 3
    EDGE = 4


# The services each service calls over gRPC: every one verifies callers' tokens with the
# keys of this run's auth service, and auth creates the new user's profile on register.
_CALLEES: Mapping[str, tuple[str, ...]] = {"auth": ("auth", "users")}
_DEFAULT_CALLEES = ("auth",)


@dataclass(frozen=True)
class HttpOk:
    """Ready when GET url answers 200."""

    url: str


@dataclass(frozen=True)
class GrpcServing:
    """Ready when the standard gRPC health check at target answers SERVING."""

    target: str


@dataclass(frozen=True)
class MongoPing:
    """Ready when MongoDB at url answers ping."""

    url: str


@dataclass(frozen=True)
class TcpListening:
    """Ready when something accepts connections on the local port."""

    port: int


ReadyCheck = HttpOk | GrpcServing | MongoPing | TcpListening


@dataclass(frozen=True)
class ProcessSpec:
    """One child process: how to start it and what it listens on."""

    name: str
    tier: Tier
    argv: tuple[str, ...]
    env: Mapping[str, str]
    ports: Mapping[str, int]
    log_path: Path
    ready_check: ReadyCheck | None = None


@dataclass(frozen=True)
class Plan:
    """Everything the runner will start, and how it knows the whole is ready."""

    data_dir: Path
    processes: tuple[ProcessSpec, ...]
    ready_check: ReadyCheck
    mongodb_url: str | None
    embedded_mongo: bool
    smtp_url: str | None
    mail_dir: Path | None
    public_port: int | None = None
    traefik_api_port: int | None = None
    traefik_dir: Path | None = None
    gateway_urls: tuple[str, ...] = field(default_factory=tuple)
    web_url: str | None = None
    """The web app's static server, when this run serves the web app."""
    web_dist: Path | None = None
    """The built web app it serves."""

    @property
    def public_url(self) -> str | None:
        """Where clients reach the suite (through Traefik), if Traefik runs."""
        return None if self.public_port is None else f"http://{LOCAL_HOST}:{self.public_port}"

    def process(self, name: str) -> ProcessSpec:
        """The spec of the process called name."""
        return next(spec for spec in self.processes if spec.name == name)

    @property
    def log_dir(self) -> Path:
        """Where every process's log file goes."""
        return self.data_dir / "logs"


@dataclass(frozen=True)
class Tools:
    """The executables the plan starts."""

    python: str
    secantusd: str
    traefik: str

    @classmethod
    def from_environment(cls) -> Tools:
        """The tools of the virtualenv the runner itself runs in."""
        scripts = Path(sysconfig.get_path("scripts"))
        return cls(
            python=sys.executable,
            secantusd=str(scripts / "secantusd-py"),
            traefik=str(scripts / "traefik"),
        )


def _target_env(grpc_targets: Mapping[str, str], callees: Iterable[str]) -> dict[str, str]:
    """`<SERVICE>_GRPC_TARGET` of each callee that this run starts."""
    return {
        f"{callee.upper()}_GRPC_TARGET": grpc_targets[callee]
        for callee in callees
        if callee in grpc_targets
    }


def _extra_instance_ports(service: str, index: int, picker: PortPicker) -> dict[str, int]:
    """The ports of instance `index` (2, 3, ...) of a service."""
    offset = EXTRA_INSTANCE_PORT_STEP * (index - 1)
    return {
        "grpc": picker.pick(DEFAULT_GRPC_PORTS[service] + offset),
        "metrics": picker.pick(DEFAULT_METRICS_PORTS[service] + offset),
    }


def _public_port(environ: Mapping[str, str], picker: PortPicker) -> int:
    raw = environ.get("PUBLIC_PORT", "").strip()
    if not raw:
        return picker.pick(DEFAULT_PUBLIC_PORT)
    try:
        port = int(raw)
    except ValueError:
        raise PlanError(f"PUBLIC_PORT must be a port number, not {raw!r}") from None
    if not 1 <= port <= 65535:
        raise PlanError(f"PUBLIC_PORT must be between 1 and 65535, not {port}")
    return port


def build_plan(options: RunOptions, environ: Mapping[str, str], tools: Tools | None = None) -> Plan:
    """Decide every process, port and environment variable of this run."""
    tools = tools or Tools.from_environment()
    picker = PortPicker(free_ports=options.free_ports)
    data_dir = options.data_dir.resolve()
    log_dir = data_dir / "logs"
    only = options.only
    services = SERVICES if only is None else tuple(s for s in SERVICES if s == only)
    run_gateways = only in (None, "gateway")
    gateway_count = 1 if only == "gateway" else options.gateways
    not_started = sorted(set(options.instances) - set(services))
    if not_started:
        raise PlanError(
            f"--instances names {', '.join(not_started)}, which this run does not start"
        )
    # Traefik's port, picked first: links in emails point at it.
    public_port = _public_port(environ, picker) if only is None else None

    # Child environment: the runner's own, plus what the runner decides.
    base_env = dict(environ)
    base_env["PYTHONUNBUFFERED"] = "1"  # log lines reach the log files as they happen
    infrastructure: list[ProcessSpec] = []

    needs_mongo = bool(services)
    embedded_mongo = needs_mongo and not environ.get("MONGODB_URL")
    mongodb_url = (environ.get("MONGODB_URL") or None) if needs_mongo else None
    if embedded_mongo:
        mongo_port = picker.pick(DEFAULT_MONGO_PORT)
        mongodb_url = f"mongodb://{LOCAL_HOST}:{mongo_port}/"
        base_env["MONGODB_URL"] = mongodb_url
        infrastructure.append(
            ProcessSpec(
                name="mongo",
                tier=Tier.INFRASTRUCTURE,
                argv=(
                    tools.secantusd,
                    "--host",
                    LOCAL_HOST,
                    "--port",
                    str(mongo_port),
                    "--storage-path",
                    str(data_dir / "mongo"),
                    "--noop-heartbeat-seconds",
                    str(MONGO_NOOP_HEARTBEAT_S),
                ),
                env={},
                ports={"mongodb": mongo_port},
                log_path=log_dir / "mongo.log",
                ready_check=MongoPing(mongodb_url),
            )
        )

    needs_mail = only in (None, "notifications")
    smtp_url = environ.get("SMTP_URL") or None
    mail_dir: Path | None = None
    if needs_mail and not smtp_url:
        smtp_port = picker.pick(DEFAULT_SMTP_PORT)
        smtp_url = f"smtp://{LOCAL_HOST}:{smtp_port}"
        mail_dir = data_dir / "mail"
        base_env["SMTP_URL"] = smtp_url
        infrastructure.append(
            ProcessSpec(
                name="mailcatcher",
                tier=Tier.INFRASTRUCTURE,
                argv=(
                    tools.python,
                    "-m",
                    "taskmesh_localrun.mailcatcher",
                    "--host",
                    LOCAL_HOST,
                    "--port",
                    str(smtp_port),
                    "--mail-dir",
                    str(mail_dir),
                ),
                env={},
                ports={"smtp": smtp_port},
                log_path=log_dir / "mailcatcher.log",
                ready_check=TcpListening(smtp_port),
            )
        )

    service_ports: dict[str, dict[str, int]] = {}
    for service in services:
        service_ports[service] = {
            "grpc": picker.pick(DEFAULT_GRPC_PORTS[service]),
            "metrics": picker.pick(DEFAULT_METRICS_PORTS[service]),
        }
    grpc_targets = {
        service: f"{LOCAL_HOST}:{ports['grpc']}" for service, ports in service_ports.items()
    }
    service_specs: list[ProcessSpec] = []
    # auth last: see Tier.
    for service in sorted(services, key=lambda name: name == "auth"):
        service_env = _target_env(grpc_targets, _CALLEES.get(service, _DEFAULT_CALLEES))
        if service == "auth":
            # auth generates its development signing key once, into the data dir.
            service_env["DEV_SIGNING_KEY_PATH"] = str(data_dir / "auth" / "dev-signing-key.pem")
        if service == "notifications" and public_port and not environ.get("PUBLIC_BASE_URL"):
            # Links in emails lead to this run's public URL, whatever its port.
            service_env["PUBLIC_BASE_URL"] = f"http://{LOCAL_HOST}:{public_port}"
        # Every instance shares the first one's environment (database, events, targets);
        # the extra ones differ only in name and ports, and no gateway calls them.
        for index in range(1, options.instances.get(service, 1) + 1):
            ports = (
                service_ports[service]
                if index == 1
                else _extra_instance_ports(service, index, picker)
            )
            name = service if index == 1 else f"{service}-{index}"
            service_specs.append(
                ProcessSpec(
                    name=name,
                    tier=Tier.AUTH if service == "auth" else Tier.SERVICES,
                    argv=(tools.python, "-m", f"taskmesh_{service}"),
                    env={
                        "GRPC_PORT": str(ports["grpc"]),
                        "METRICS_PORT": str(ports["metrics"]),
                        **service_env,
                    },
                    ports=ports,
                    log_path=log_dir / f"{name}.log",
                    ready_check=GrpcServing(f"{LOCAL_HOST}:{ports['grpc']}"),
                )
            )

    gateway_specs: list[ProcessSpec] = []
    if run_gateways:
        for index in range(1, gateway_count + 1):
            name = f"gateway-{index}"
            port = picker.pick(DEFAULT_GATEWAY_BASE_PORT + index)
            gateway_specs.append(
                ProcessSpec(
                    name=name,
                    tier=Tier.GATEWAYS,
                    argv=(tools.python, "-m", "taskmesh_gateway"),
                    env={
                        "GATEWAY_PORT": str(port),
                        "INSTANCE_NAME": name,
                        **_target_env(grpc_targets, services),
                    },
                    ports={"http": port},
                    log_path=log_dir / f"{name}.log",
                    # Traefik's first health check then finds every gateway up already.
                    ready_check=HttpOk(f"http://{LOCAL_HOST}:{port}/healthz"),
                )
            )
    gateway_urls = tuple(f"http://{LOCAL_HOST}:{spec.ports['http']}" for spec in gateway_specs)

    # The web app is served at the public URL, so only where Traefik runs.
    web_dist = options.web_dist.resolve() if options.web and only is None else None
    web_url: str | None = None
    web_specs: list[ProcessSpec] = []
    if web_dist is not None:
        web_port = picker.pick(DEFAULT_WEB_PORT)
        web_url = f"http://{LOCAL_HOST}:{web_port}"
        web_specs.append(
            ProcessSpec(
                name="web",
                tier=Tier.GATEWAYS,
                argv=(
                    tools.python,
                    "-m",
                    "taskmesh_localrun.webapp",
                    "--host",
                    LOCAL_HOST,
                    "--port",
                    str(web_port),
                    "--dist",
                    str(web_dist),
                ),
                env={},
                ports={"http": web_port},
                log_path=log_dir / "web.log",
                ready_check=HttpOk(f"{web_url}/"),
            )
        )

    edge: list[ProcessSpec] = []
    traefik_api_port: int | None = None
    traefik_dir: Path | None = None
    ready_check: ReadyCheck
    if public_port is not None:
        traefik_api_port = picker.pick(DEFAULT_TRAEFIK_API_PORT)
        traefik_dir = data_dir / "traefik"
        edge.append(
            ProcessSpec(
                name="traefik",
                tier=Tier.EDGE,
                argv=(tools.traefik, f"--configFile={traefik_dir / 'traefik.yaml'}"),
                env={},
                ports={"public": public_port, "api": traefik_api_port},
                log_path=log_dir / "traefik.log",
                ready_check=HttpOk(f"http://{LOCAL_HOST}:{traefik_api_port}/ping"),
            )
        )
        ready_check = HttpOk(f"http://{LOCAL_HOST}:{public_port}/readyz")
    elif only == "gateway":
        ready_check = HttpOk(f"{gateway_urls[0]}/healthz")
    else:
        assert only is not None  # no public port only when one part runs alone
        ready_check = GrpcServing(grpc_targets[only])

    processes = tuple(
        ProcessSpec(
            name=spec.name,
            tier=spec.tier,
            argv=spec.argv,
            env={**base_env, **spec.env},
            ports=spec.ports,
            log_path=spec.log_path,
            ready_check=spec.ready_check,
        )
        for spec in (*infrastructure, *service_specs, *gateway_specs, *web_specs, *edge)
    )
    return Plan(
        data_dir=data_dir,
        processes=processes,
        ready_check=ready_check,
        mongodb_url=mongodb_url,
        embedded_mongo=embedded_mongo,
        smtp_url=smtp_url,
        mail_dir=mail_dir,
        public_port=public_port,
        traefik_api_port=traefik_api_port,
        traefik_dir=traefik_dir,
        gateway_urls=gateway_urls,
        web_url=web_url,
        web_dist=web_dist,
    )
