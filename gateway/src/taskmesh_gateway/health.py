"""Operational endpoints: liveness, readiness and Prometheus metrics (outside /api/v1)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel
from redis.asyncio import Redis
from starlette.responses import Response

from taskmesh_gateway.clients import SERVICE_DESCRIPTORS, BrokerConnection, ServiceClients
from taskmesh_gateway.problems import PROBLEM_MEDIA_TYPE, RETRY_AFTER_S, problem_response

log = structlog.get_logger(__name__)

CheckResult = Literal["ok", "down", "timeout"]

router = APIRouter(tags=["operations"])


class Liveness(BaseModel):
    """The process is alive."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Every dependency answered its health check."""

    status: Literal["ok"] = "ok"
    checks: dict[str, CheckResult]


class Unready(BaseModel):
    """A problem document naming what is down, with the result of every check."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None
    request_id: str | None
    checks: dict[str, CheckResult]


@router.get("/healthz", summary="Liveness: 200 while the process lives")
async def liveness() -> Liveness:
    """Answer 200 without touching any dependency."""
    return Liveness()


@router.get(
    "/readyz",
    summary="Readiness: Redis, RabbitMQ and every service answer their health check",
    response_model=Readiness,
    responses={
        503: {
            "model": Unready,
            "description": "Something is down; `detail` and `checks` name it",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Unready"}}},
        }
    },
)
async def readiness(request: Request) -> Response:
    """Check every dependency concurrently, each within the readiness timeout."""
    state = request.app.state
    timeout_s: float = state.settings.readiness_timeout_s
    probes = _probes(state.clients, state.redis, state.broker)
    names = list(probes)
    results = await asyncio.gather(*(_run(name, probes[name], timeout_s) for name in names))
    checks: dict[str, CheckResult] = dict(zip(names, results, strict=True))
    down = [name for name, result in checks.items() if result != "ok"]
    if not down:
        return JSONResponse(Readiness(checks=checks).model_dump())
    return problem_response(
        request.scope,
        503,
        detail=f"unavailable: {', '.join(down)}",
        headers={"Retry-After": str(RETRY_AFTER_S)},
        extra={"checks": checks},
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics in the text exposition format",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics() -> Response:
    """Render the process's Prometheus registry."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


Probe = Callable[[], Awaitable[None]]


def _probes(clients: ServiceClients, redis: Redis, broker: BrokerConnection) -> Mapping[str, Probe]:
    async def ping_redis() -> None:
        await redis.ping()

    probes: dict[str, Probe] = {"redis": ping_redis, "rabbitmq": broker.ping}
    for name, channel in clients.channels.items():
        service = SERVICE_DESCRIPTORS[name].full_name
        probes[name] = _grpc_health_probe(health_pb2_grpc.HealthStub(channel), service)
    return probes


def _grpc_health_probe(stub: health_pb2_grpc.HealthStub, service: str) -> Probe:
    """Ask the server at the channel's address whether it serves `service` (its full name)."""

    async def check() -> None:
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            raise ConnectionError(f"health status {response.status}")

    return check


async def _run(name: str, probe: Probe, timeout_s: float) -> CheckResult:
    try:
        async with asyncio.timeout(timeout_s):
            await probe()
    except TimeoutError:
        log.warning("readiness.check_failed", check=name, reason="timeout")
        return "timeout"
    except Exception as exc:
        log.warning("readiness.check_failed", check=name, reason=type(exc).__name__)
        return "down"
    return "ok"
