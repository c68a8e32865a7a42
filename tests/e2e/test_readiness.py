"""The suite started as `make run` starts it reports itself ready through Traefik."""

from __future__ import annotations

import httpx
import pytest
from taskmesh_localrun.testing import LocalRun

pytestmark = pytest.mark.e2e

SERVICES = ("auth", "users", "tasks", "notifications", "analytics")


def test_readyz_reports_all_five_services_redis_and_rabbitmq_healthy(suite: LocalRun) -> None:
    response = httpx.get(f"{suite.url}/readyz", timeout=5)

    assert response.status_code == 200
    checks = response.json()["checks"]
    assert {name: checks.get(name) for name in (*SERVICES, "redis", "rabbitmq")} == {
        name: "ok" for name in (*SERVICES, "redis", "rabbitmq")
    }
