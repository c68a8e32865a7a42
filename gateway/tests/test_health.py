"""Liveness, readiness over the real dependencies, and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
import pytest
from taskmesh_gateway.clients import SERVICE_DESCRIPTORS
from taskmesh_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import HealthServers, LifespanClient


def every_service_at(target: str, **overrides: str) -> dict[str, str]:
    """Settings fields pointing every service at `target`, except those overridden."""
    return {f"{name}_grpc_target": overrides.get(name, target) for name in SERVICE_DESCRIPTORS}


async def test_healthz_is_ok_without_any_dependency(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_names_the_down_service(
    settings: GatewaySettings,
    health_servers: HealthServers,
    all_services: list[str],
    unused_target: str,
    started_gateway: LifespanClient,
) -> None:
    target, _ = await health_servers.start(serving=all_services)
    client = await started_gateway(
        settings.model_copy(update=every_service_at(target, tasks=unused_target))
    )

    response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    problem = response.json()
    assert "tasks" in problem["detail"]
    assert problem["checks"]["tasks"] in {"down", "timeout"}
    assert {problem["checks"][name] for name in ("auth", "users", "notifications")} == {"ok"}


async def test_readyz_reports_a_service_that_is_not_serving(
    settings: GatewaySettings,
    health_servers: HealthServers,
    all_services: list[str],
    started_gateway: LifespanClient,
) -> None:
    analytics = SERVICE_DESCRIPTORS["analytics"].full_name
    target, _ = await health_servers.start(
        serving=[name for name in all_services if name != analytics]
    )
    client = await started_gateway(settings.model_copy(update=every_service_at(target)))

    problem = (await client.get("/readyz")).json()

    assert problem["checks"]["analytics"] == "down"
    assert "analytics" in problem["detail"]


@pytest.mark.integration
async def test_readyz_ok_when_all_up(
    settings: GatewaySettings,
    health_servers: HealthServers,
    all_services: list[str],
    started_gateway: LifespanClient,
) -> None:
    target, _ = await health_servers.start(serving=all_services)
    client = await started_gateway(settings.model_copy(update=every_service_at(target)))

    # The RabbitMQ connection opens in the background, so readiness may take a moment.
    for _ in range(100):
        response = await client.get("/readyz")
        if response.status_code == 200:
            break
        await asyncio.sleep(0.1)

    assert response.json() == {
        "status": "ok",
        "checks": dict.fromkeys(["redis", "rabbitmq", *SERVICE_DESCRIPTORS], "ok"),
    }


async def test_metrics_label_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/_probe/tasks/65f0c0ffee0000000000ffff")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'route="/_probe/tasks/{task_id}"' in response.text
    assert "65f0c0ffee0000000000ffff" not in response.text
    assert "http_request_duration_seconds_bucket" in response.text
