"""Requests through Traefik: balanced over gateways, traced by request id, errors as problems."""

from __future__ import annotations

import uuid

import httpx
import pytest
from taskmesh_localrun.testing import LocalRun, eventually, json_lines

pytestmark = pytest.mark.e2e

PROBLEM_JSON = "application/problem+json"


def request_ids_in(suite: LocalRun, process: str) -> set[str]:
    return {str(r["request_id"]) for r in json_lines(suite.log(process)) if "request_id" in r}


def register(suite: LocalRun, request_id: str) -> httpx.Response:
    body = {
        "email": f"{uuid.uuid4().hex[:12]}@example.com",
        "password": "correct horse battery staple",
        "name": "Ada Lovelace",
    }
    return httpx.post(
        f"{suite.url}/api/v1/auth/register",
        json=body,
        headers={"X-Request-ID": request_id},
        timeout=10,
    )


def test_requests_through_traefik_reach_both_gateway_instances(suite: LocalRun) -> None:
    sent = {f"e2e-balance-{uuid.uuid4().hex}" for _ in range(10)}
    for request_id in sent:
        response = httpx.get(f"{suite.url}/healthz", headers={"X-Request-ID": request_id})
        assert response.status_code == 200

    def both_gateways_served_some() -> bool:
        return all(sent & request_ids_in(suite, name) for name in ("gateway-1", "gateway-2"))

    assert eventually(both_gateways_served_some)


def test_client_request_id_is_echoed_and_logged_by_gateway_and_service(suite: LocalRun) -> None:
    request_id = f"e2e-trace-{uuid.uuid4().hex}"

    response = register(suite, request_id)

    assert response.headers["X-Request-ID"] == request_id

    def logged_by_a_gateway() -> bool:
        return any(request_id in request_ids_in(suite, g) for g in ("gateway-1", "gateway-2"))

    assert eventually(logged_by_a_gateway)
    assert eventually(lambda: request_id in request_ids_in(suite, "auth"))
