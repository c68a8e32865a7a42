"""The OpenAPI document describes every REST route with its answers and problems."""

from __future__ import annotations

from typing import Any

import pytest
from taskmesh_gateway.app import create_app
from taskmesh_gateway.settings import GatewaySettings

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    schema: dict[str, Any] = create_app(GatewaySettings()).openapi()
    return schema


def api_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        if path.startswith("/api/v1/") or path == "/.well-known/jwks.json"
        for method, operation in item.items()
        if method in METHODS
    ]


def test_every_route_of_the_contract_is_documented(document: dict[str, Any]) -> None:
    documented = {(method.upper(), path) for path, method, _ in api_operations(document)}

    assert {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/change-password"),
        ("POST", "/api/v1/auth/forgot-password"),
        ("POST", "/api/v1/auth/reset-password"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/api/v1/users/me"),
        ("PATCH", "/api/v1/users/me"),
        ("DELETE", "/api/v1/users/me"),
        ("GET", "/api/v1/users/lookup"),
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/users/{id}"),
        ("PATCH", "/api/v1/users/{id}"),
        ("DELETE", "/api/v1/users/{id}"),
        ("POST", "/api/v1/tasks"),
        ("GET", "/api/v1/tasks"),
        ("GET", "/api/v1/tasks/{id}"),
        ("PATCH", "/api/v1/tasks/{id}"),
        ("PUT", "/api/v1/tasks/{id}"),
        ("DELETE", "/api/v1/tasks/{id}"),
        ("POST", "/api/v1/tasks/{id}/attachments"),
        ("GET", "/api/v1/tasks/{id}/attachments"),
        ("GET", "/api/v1/tasks/{id}/attachments/{att_id}"),
        ("DELETE", "/api/v1/tasks/{id}/attachments/{att_id}"),
        ("GET", "/api/v1/notifications"),
        ("POST", "/api/v1/notifications/{id}/read"),
        ("POST", "/api/v1/notifications/read-all"),
        ("GET", "/api/v1/analytics/summary"),
        ("GET", "/api/v1/analytics/endpoints"),
        ("GET", "/api/v1/analytics/timeseries"),
    } <= documented


def test_every_route_has_a_summary_and_documented_problems(document: dict[str, Any]) -> None:
    for path, method, operation in api_operations(document):
        assert operation.get("summary") or operation.get("description"), (method, path)
        errors = [status for status in operation["responses"] if status.startswith(("4", "5"))]
        assert errors, (method, path)


def test_authenticated_routes_document_401_and_the_bearer_scheme(
    document: dict[str, Any],
) -> None:
    operation = document["paths"]["/api/v1/tasks/{id}"]["get"]

    assert "401" in operation["responses"]
    assert operation["security"] == [{"OAuth2PasswordBearer": []}]
    problem = operation["responses"]["404"]["content"]["application/problem+json"]
    assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_task_timestamps_are_documented_as_date_time(document: dict[str, Any]) -> None:
    task = document["components"]["schemas"]["Task"]["properties"]

    assert task["created_at"]["format"] == "date-time"


def test_every_api_route_documents_the_rate_limit_and_admission_problems(
    document: dict[str, Any],
) -> None:
    for path, method, operation in api_operations(document):
        assert {"429", "503"} <= set(operation["responses"]), (method, path)


def test_me_documents_the_cache_header(document: dict[str, Any]) -> None:
    answer = document["paths"]["/api/v1/auth/me"]["get"]["responses"]["200"]

    assert "X-Cache" in answer["headers"]
    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/User"}


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("get", "/api/v1/users/me", {"200", "401", "404"}),
        ("delete", "/api/v1/users/me", {"204", "401", "409"}),
        ("get", "/api/v1/users/lookup", {"200", "401", "404", "422"}),
        ("get", "/api/v1/users", {"200", "401", "403", "422"}),
        ("get", "/api/v1/users/{id}", {"200", "401", "403", "404"}),
        ("patch", "/api/v1/users/{id}", {"200", "401", "403", "404", "409", "422"}),
        ("delete", "/api/v1/users/{id}", {"204", "401", "403", "404", "409"}),
    ],
)
def test_user_routes_document_their_answers(
    document: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    assert statuses <= set(document["paths"][path][method]["responses"])
