"""Every error is one RFC 9457 problem document; gRPC statuses map to their HTTP meaning."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import httpx
import pytest

if TYPE_CHECKING:
    from conftest import StubService

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance", "request_id"}


async def test_unknown_route_is_problem_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert set(problem) == PROBLEM_MEMBERS
    assert problem["status"] == 404
    assert problem["instance"] == "/api/v1/no-such-thing"
    assert problem["request_id"] == response.headers["x-request-id"]


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["status"] == 405


async def test_allow_lists_every_route_on_the_path(client: httpx.AsyncClient) -> None:
    response = await client.delete("/_probe/notes")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_probe/notes", content=b'{"title": ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "not valid JSON" in response.json()["detail"]


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_probe/notes", content=b"title=Shopping", headers={"Content-Type": "text/plain"}
    )

    assert response.status_code == 415
    assert response.json()["status"] == 415


async def test_body_without_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/_probe/notes", content=b'{"title": "Shopping"}')

    assert response.status_code == 415


async def test_missing_body_is_422_not_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/_probe/notes")

    assert response.status_code == 422


async def test_json_with_a_suffix_media_type_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/_probe/notes",
        content=b'{"title": "Shopping"}',
        headers={"Content-Type": "application/merge-patch+json"},
    )

    assert response.status_code == 200


async def test_invalid_body_is_422_with_errors(client: httpx.AsyncClient) -> None:
    response = await client.post("/_probe/notes", json={"title": 7, "colour": "red"})

    assert response.status_code == 422
    problem = response.json()
    assert {tuple(error["loc"]) for error in problem["errors"]} == {
        ("body", "title"),
        ("body", "colour"),
    }
    assert all(set(error) == {"loc", "msg"} for error in problem["errors"])


async def test_unimplemented_rpc_is_501_problem(
    client: httpx.AsyncClient, tasks_service: StubService
) -> None:
    tasks_service.fail_with(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")

    response = await client.get("/_probe/tasks/65f0c0ffee0000000000aaaa")

    assert response.status_code == 501
    assert response.headers["content-type"] == "application/problem+json"
    assert "Method not found" not in response.json()["detail"]


async def test_unavailable_service_is_503_with_retry_after(
    client: httpx.AsyncClient, tasks_service: StubService
) -> None:
    tasks_service.fail_with(
        grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; tasks-2.internal:50053"
    )

    response = await client.get("/_probe/tasks/65f0c0ffee0000000000aaaa")

    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert "internal" not in response.text


async def test_deadline_exceeded_is_504(
    client: httpx.AsyncClient, tasks_service: StubService
) -> None:
    tasks_service.fail_with(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    response = await client.get("/_probe/tasks/65f0c0ffee0000000000aaaa")

    assert response.status_code == 504


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.FAILED_PRECONDITION, 412),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 413),
        (grpc.StatusCode.INVALID_ARGUMENT, 422),
    ],
)
async def test_deliberate_service_error_keeps_its_message(
    client: httpx.AsyncClient, tasks_service: StubService, code: grpc.StatusCode, status: int
) -> None:
    tasks_service.fail_with(code, "task 65f0c0ffee0000000000aaaa: version 3 is not current")

    response = await client.get("/_probe/tasks/65f0c0ffee0000000000aaaa")

    assert response.status_code == status
    assert response.json()["detail"] == "task 65f0c0ffee0000000000aaaa: version 3 is not current"


async def test_unauthenticated_rpc_is_401_with_www_authenticate(
    client: httpx.AsyncClient, tasks_service: StubService
) -> None:
    tasks_service.fail_with(grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")

    response = await client.get("/_probe/tasks/65f0c0ffee0000000000aaaa")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_invalid_argument_lists_the_services_field_errors(
    client: httpx.AsyncClient, tasks_service: StubService
) -> None:
    tasks_service.error = grpc.aio.AioRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(
            ("x-field-errors", '[{"loc":["assignee_id"],"msg":"no such active user"}]')
        ),
        details="invalid request",
    )

    response = await client.get("/_probe/tasks/65f0c0ffee0000000000aaaa")

    assert response.status_code == 422
    assert response.json()["errors"] == [{"loc": ["assignee_id"], "msg": "no such active user"}]


async def test_internal_rpc_error_hides_details(
    client: httpx.AsyncClient, tasks_service: StubService
) -> None:
    tasks_service.fail_with(grpc.StatusCode.INTERNAL, "pymongo: db-7.internal:27017 timed out")

    response = await client.get("/_probe/tasks/65f0c0ffee0000000000aaaa")

    assert response.status_code == 500
    assert "db-7" not in response.text


async def test_internal_error_hides_details(client: httpx.AsyncClient) -> None:
    response = await client.get("/_probe/crash", headers={"X-Request-ID": "crash-1"})

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "crash-1"
    assert response.json()["request_id"] == "crash-1"
    assert "db-7" not in response.text
    assert "Traceback" not in response.text
