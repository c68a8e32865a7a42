"""The /api/v1/tasks routes: validation, proto conversion, status codes and headers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_chassis.identity import Caller
from taskmesh_gateway.app import create_app
from taskmesh_gateway.dependencies import get_current_user
from taskmesh_gateway.schemas.auth import Role
from taskmesh_gateway.settings import GatewaySettings
from taskmesh_gateway.task_list_cache import TaskListCache

if TYPE_CHECKING:
    from conftest import InMemoryTaskListCache

TASK_ID = "65f0c0ffee0000000000aaaa"
OWNER_ID = "65f0c0ffee0000000000bbbb"
ASSIGNEE_ID = "65f0c0ffee0000000000dddd"
ATTACHMENT_ID = "65f0c0ffee0000000000cccc"
CREATED = datetime(2026, 11, 28, 9, 42, 14, 123000, tzinfo=UTC)


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def timestamp(value: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(value)
    return result


def stored_task(**changes: Any) -> tasks_pb2.Task:
    fields: dict[str, Any] = {
        "id": TASK_ID,
        "owner_id": OWNER_ID,
        "title": "Write the report",
        "description": "",
        "status": tasks_pb2.STATUS_TODO,
        "priority": tasks_pb2.PRIORITY_MEDIUM,
        "tags": ["work"],
        "created_at": timestamp(CREATED),
        "updated_at": timestamp(CREATED),
        "version": 1,
    }
    return tasks_pb2.Task(**(fields | changes))


def stored_attachment() -> tasks_pb2.Attachment:
    return tasks_pb2.Attachment(
        id=ATTACHMENT_ID,
        task_id=TASK_ID,
        filename="report.txt",
        content_type="text/plain",
        size=11,
        sha256="ab" * 32,
        created_at=timestamp(CREATED),
    )


class FakeDownload:
    """A server-streaming call: iterable once, cancellable."""

    def __init__(self, messages: list[tasks_pb2.DownloadAttachmentResponse]) -> None:
        self._messages = messages
        self.cancelled = False

    def __aiter__(self) -> AsyncIterator[tasks_pb2.DownloadAttachmentResponse]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[tasks_pb2.DownloadAttachmentResponse]:
        for message in self._messages:
            yield message

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class FakeCall:
    """A unary grpc.aio call: awaiting it answers `reply` (or raises `error`); it carries the
    `x-affected-user-ids` trailing metadata, as the tasks service sends it."""

    def __init__(self, reply: Any, error: grpc.aio.AioRpcError | None, affected: str) -> None:
        self._reply = reply
        self._error = error
        self._affected = affected

    def __await__(self) -> Any:
        return self._result().__await__()

    async def _result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._reply

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(("x-affected-user-ids", self._affected))


class FakeUploadCall(FakeCall):
    """A client-streaming call: written to, half-closed, then awaited; cancellable."""

    def __init__(self, service: FakeTasksService) -> None:
        super().__init__(stored_attachment(), service.error, service.affected)
        self._service = service
        self.cancelled = False

    async def write(self, request: tasks_pb2.UploadAttachmentRequest) -> None:
        self._service.uploaded.append(request)

    async def done_writing(self) -> None:
        self._service.upload_finished = True

    def cancel(self) -> bool:
        self.cancelled = True
        self._service.upload_cancelled = True
        return True


class FakeTasksService:
    """Answers like the tasks service for one task; `error`, when set, fails every call."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.error: grpc.aio.AioRpcError | None = None
        self.affected = f"{OWNER_ID},{ASSIGNEE_ID}"
        self.uploaded: list[tasks_pb2.UploadAttachmentRequest] = []
        self.upload_finished = False
        self.upload_cancelled = False

    def _call(self, request: Any, reply: Any) -> FakeCall:
        self.requests.append(request)
        return FakeCall(reply, self.error, self.affected)

    def CreateTask(self, request: tasks_pb2.CreateTaskRequest) -> FakeCall:
        return self._call(request, stored_task(title=request.task.title))

    async def GetTask(self, request: tasks_pb2.GetTaskRequest) -> tasks_pb2.Task:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return stored_task(version=7)

    async def ListTasks(self, request: tasks_pb2.ListTasksRequest) -> tasks_pb2.ListTasksResponse:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return tasks_pb2.ListTasksResponse(tasks=[stored_task()], page={"next_cursor": "c2"})

    def UpdateTask(self, request: tasks_pb2.UpdateTaskRequest) -> FakeCall:
        return self._call(request, stored_task(version=8))

    def ReplaceTask(self, request: tasks_pb2.ReplaceTaskRequest) -> FakeCall:
        return self._call(request, stored_task(version=9))

    def DeleteTask(self, request: tasks_pb2.DeleteTaskRequest) -> FakeCall:
        return self._call(request, Empty())

    def UploadAttachment(self) -> FakeUploadCall:
        self.requests.append("UploadAttachment")
        return FakeUploadCall(self)

    async def ListAttachments(
        self, request: tasks_pb2.ListAttachmentsRequest
    ) -> tasks_pb2.ListAttachmentsResponse:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return tasks_pb2.ListAttachmentsResponse(attachments=[stored_attachment()])

    def DownloadAttachment(self, request: tasks_pb2.DownloadAttachmentRequest) -> FakeDownload:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return FakeDownload(
            [
                tasks_pb2.DownloadAttachmentResponse(metadata=stored_attachment()),
                tasks_pb2.DownloadAttachmentResponse(chunk=b"hello "),
                tasks_pb2.DownloadAttachmentResponse(chunk=b"world"),
            ]
        )

    def DeleteAttachment(self, request: tasks_pb2.DeleteAttachmentRequest) -> FakeCall:
        return self._call(request, Empty())


class ServiceClientsStandIn:
    def __init__(self, tasks: FakeTasksService) -> None:
        self.tasks = tasks


@pytest.fixture
def tasks_service() -> FakeTasksService:
    return FakeTasksService()


@pytest.fixture
def app(
    tasks_service: FakeTasksService, open_gate: Any, list_cache: InMemoryTaskListCache
) -> FastAPI:
    app = create_app(GatewaySettings(max_upload_bytes=1024))
    app.state.clients = ServiceClientsStandIn(tasks_service)
    app.state.gatekeeper = open_gate
    app.state.task_list_cache = list_cache
    return app


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    caller = Caller(
        OWNER_ID,
        Role.user,
        "jti-1",
        "sid-1",
        CREATED.timestamp() - 900,
        CREATED.timestamp(),
        "token-1",
    )
    app.dependency_overrides[get_current_user] = lambda: caller
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def test_listing_tasks_without_a_token_is_401(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/api/v1/tasks")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


async def test_create_task_answers_201_with_location_and_etag(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/v1/tasks", json={"title": "Write the report"})

    assert response.status_code == 201
    assert response.headers["location"] == f"/api/v1/tasks/{TASK_ID}"
    assert response.headers["etag"] == '"1"'
    assert response.json() == {
        "id": TASK_ID,
        "owner_id": OWNER_ID,
        "assignee_id": None,
        "title": "Write the report",
        "description": "",
        "status": "todo",
        "priority": "medium",
        "due_at": None,
        "tags": ["work"],
        "created_at": "2026-11-28T09:42:14.123Z",
        "updated_at": "2026-11-28T09:42:14.123Z",
        "completed_at": None,
        "version": 1,
    }


async def test_create_task_sends_every_field_to_the_service(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    await client.post(
        "/api/v1/tasks",
        json={
            "title": "  Plan  ",
            "description": "details",
            "status": "in_progress",
            "priority": "urgent",
            "due_at": "2026-12-01T10:00:00+01:00",
            "tags": ["a", "b"],
            "assignee_id": "65f0c0ffee0000000000dddd",
        },
    )

    (request,) = tasks_service.requests
    assert request.task.title == "Plan"
    assert request.task.description == "details"
    assert request.task.status == tasks_pb2.STATUS_IN_PROGRESS
    assert request.task.priority == tasks_pb2.PRIORITY_URGENT
    assert request.task.due_at.ToDatetime(tzinfo=UTC) == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert list(request.task.tags) == ["a", "b"]
    assert request.task.assignee_id == "65f0c0ffee0000000000dddd"


async def test_create_task_with_an_unknown_field_is_422(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    response = await client.post("/api/v1/tasks", json={"title": "x", "colour": "red"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "colour"]
    assert tasks_service.requests == []


@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 201},
        {"title": "x", "description": "x" * 10_001},
        {"title": "x", "tags": [f"t{i}" for i in range(21)]},
        {"title": "x", "tags": ["x" * 33]},
        {"title": "x", "tags": [""]},
        {"title": "x", "status": "blocked"},
        {"title": "x", "priority": "critical"},
        {"title": "x", "due_at": "2026-12-01T10:00:00"},
        {"title": "x", "status": None},
        {"description": "no title"},
    ],
)
async def test_create_task_rejects_invalid_bodies_with_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post("/api/v1/tasks", json=body)

    assert response.status_code == 422


async def test_read_task_carries_its_version_as_etag(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/tasks/{TASK_ID}")

    assert response.status_code == 200
    assert response.headers["etag"] == '"7"'
    assert response.json()["version"] == 7


@pytest.mark.parametrize("if_none_match", ['"7"', 'W/"7"', '"5", "7"', "*"])
async def test_read_task_is_304_without_a_body_when_the_clients_copy_is_current(
    client: httpx.AsyncClient, if_none_match: str
) -> None:
    response = await client.get(
        f"/api/v1/tasks/{TASK_ID}", headers={"If-None-Match": if_none_match}
    )

    assert response.status_code == 304
    assert response.headers["etag"] == '"7"'
    assert response.content == b""


@pytest.mark.parametrize("if_none_match", ['"6"', 'W/"6", "8"', '"seven"'])
async def test_read_task_answers_the_task_when_the_clients_copy_is_stale(
    client: httpx.AsyncClient, if_none_match: str
) -> None:
    response = await client.get(
        f"/api/v1/tasks/{TASK_ID}", headers={"If-None-Match": if_none_match}
    )

    assert response.status_code == 200
    assert response.headers["etag"] == '"7"'
    assert response.json()["version"] == 7


async def test_read_task_not_found_is_a_404_problem(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    tasks_service.error = rpc_error(grpc.StatusCode.NOT_FOUND, "task not found")

    response = await client.get(f"/api/v1/tasks/{TASK_ID}")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["instance"] == f"/api/v1/tasks/{TASK_ID}"


async def test_an_unimplemented_rpc_is_a_501_problem(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    tasks_service.error = rpc_error(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")

    response = await client.post("/api/v1/tasks", json={"title": "x"})

    assert response.status_code == 501
    assert response.json()["title"] == "Not Implemented"


async def test_list_tasks_converts_filters_sort_and_paging(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    response = await client.get(
        "/api/v1/tasks",
        params=[
            ("status", "done"),
            ("priority", "high"),
            ("tag", "a"),
            ("tag", "b"),
            ("scope", "owned"),
            ("q", "report"),
            ("due_before", "2026-12-31T00:00:00Z"),
            ("sort", "-priority"),
            ("limit", "5"),
            ("cursor", "c1"),
            ("unknown", "ignored"),
        ],
    )

    assert response.status_code == 200
    assert response.json()["next_cursor"] == "c2"
    assert [task["id"] for task in response.json()["items"]] == [TASK_ID]
    (request,) = tasks_service.requests
    assert request.status == tasks_pb2.STATUS_DONE
    assert request.priority == tasks_pb2.PRIORITY_HIGH
    assert list(request.tags) == ["a", "b"]
    assert request.scope == tasks_pb2.SCOPE_OWNED
    assert request.q == "report"
    assert request.HasField("due_before")
    assert not request.HasField("due_after")
    assert request.sort == tasks_pb2.SORT_PRIORITY_DESC
    assert (request.page.limit, request.page.cursor) == (5, "c1")


async def test_list_tasks_defaults(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    await client.get("/api/v1/tasks")

    (request,) = tasks_service.requests
    assert request.page.limit == 20
    assert request.sort == tasks_pb2.SORT_CREATED_AT_DESC
    assert request.scope == tasks_pb2.SCOPE_ALL
    assert not request.HasField("owner_id")


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "status=blocked",
        "priority=critical",
        "sort=title",
        "scope=everyone",
        "due_after=tomorrow",
    ],
)
async def test_list_tasks_rejects_values_outside_their_set_with_422(
    client: httpx.AsyncClient, query: str
) -> None:
    response = await client.get(f"/api/v1/tasks?{query}")

    assert response.status_code == 422
    assert response.json()["errors"]


async def test_patch_sends_only_the_given_fields_and_the_if_match_version(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    response = await client.patch(
        f"/api/v1/tasks/{TASK_ID}",
        json={"status": "done", "due_at": None},
        headers={"If-Match": '"7"'},
    )

    assert response.status_code == 200
    assert response.headers["etag"] == '"8"'
    (request,) = tasks_service.requests
    assert request.task_id == TASK_ID
    assert request.expected_version == 7
    assert list(request.update_mask.paths) == ["status", "due_at"]
    assert request.task.status == tasks_pb2.STATUS_DONE
    assert not request.task.HasField("due_at")


async def test_patch_without_if_match_requires_no_version(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    await client.patch(f"/api/v1/tasks/{TASK_ID}", json={"title": "New"})

    (request,) = tasks_service.requests
    assert not request.HasField("expected_version")
    assert list(request.update_mask.paths) == ["title"]


async def test_patch_cannot_null_a_required_field(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"/api/v1/tasks/{TASK_ID}", json={"title": None})

    assert response.status_code == 422


async def test_patch_with_a_stale_version_is_412(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    tasks_service.error = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "version is 8, not 7")

    response = await client.patch(
        f"/api/v1/tasks/{TASK_ID}", json={"title": "x"}, headers={"If-Match": '"7"'}
    )

    assert response.status_code == 412


async def test_patch_with_a_malformed_if_match_is_412(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    response = await client.patch(
        f"/api/v1/tasks/{TASK_ID}", json={"title": "x"}, headers={"If-Match": "seven"}
    )

    assert response.status_code == 412
    assert tasks_service.requests == []


async def test_put_replaces_with_defaults_for_omitted_fields(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    response = await client.put(
        f"/api/v1/tasks/{TASK_ID}", json={"title": "Only a title"}, headers={"If-Match": '"8"'}
    )

    assert response.status_code == 200
    assert response.headers["etag"] == '"9"'
    (request,) = tasks_service.requests
    assert request.expected_version == 8
    assert request.task.title == "Only a title"
    assert request.task.status == tasks_pb2.STATUS_TODO
    assert request.task.priority == tasks_pb2.PRIORITY_MEDIUM
    assert not request.task.HasField("assignee_id")


async def test_delete_task_is_204(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    response = await client.delete(f"/api/v1/tasks/{TASK_ID}")

    assert response.status_code == 204
    assert response.content == b""
    assert tasks_service.requests[0].task_id == TASK_ID


async def test_upload_streams_metadata_then_chunks(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    response = await client.post(
        f"/api/v1/tasks/{TASK_ID}/attachments",
        files={"file": ("../secret/report.txt", b"hello world", "text/plain")},
    )

    assert response.status_code == 201
    assert response.headers["location"] == f"/api/v1/tasks/{TASK_ID}/attachments/{ATTACHMENT_ID}"
    assert response.json() == {
        "id": ATTACHMENT_ID,
        "filename": "report.txt",
        "content_type": "text/plain",
        "size": 11,
        "sha256": "ab" * 32,
        "created_at": "2026-11-28T09:42:14.123Z",
    }
    first, *chunks = tasks_service.uploaded
    assert first.metadata == tasks_pb2.AttachmentUpload(
        task_id=TASK_ID, filename="report.txt", content_type="text/plain"
    )
    assert b"".join(chunk.chunk for chunk in chunks) == b"hello world"


async def test_upload_larger_than_the_limit_is_413(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    response = await client.post(
        f"/api/v1/tasks/{TASK_ID}/attachments",
        files={"file": ("big.bin", b"x" * 1025, "application/octet-stream")},
    )

    assert response.status_code == 413
    assert tasks_service.upload_cancelled
    assert not tasks_service.upload_finished


async def test_upload_without_a_file_field_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/api/v1/tasks/{TASK_ID}/attachments",
        files={"other": ("a.txt", b"a", "text/plain")},
    )

    assert response.status_code == 422


async def test_list_attachments_is_a_list(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/tasks/{TASK_ID}/attachments")

    assert response.status_code == 200
    assert [attachment["id"] for attachment in response.json()] == [ATTACHMENT_ID]


async def test_download_streams_the_bytes_as_an_attachment(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/tasks/{TASK_ID}/attachments/{ATTACHMENT_ID}")

    assert response.status_code == 200
    assert response.content == b"hello world"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"report.txt\"; filename*=UTF-8''report.txt"
    )
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_download_of_a_missing_attachment_is_404(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    tasks_service.error = rpc_error(grpc.StatusCode.NOT_FOUND, "attachment not found")

    response = await client.get(f"/api/v1/tasks/{TASK_ID}/attachments/{ATTACHMENT_ID}")

    assert response.status_code == 404


async def test_delete_attachment_is_204(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    response = await client.delete(f"/api/v1/tasks/{TASK_ID}/attachments/{ATTACHMENT_ID}")

    assert response.status_code == 204
    assert tasks_service.requests[0].attachment_id == ATTACHMENT_ID


# The list cache and its invalidation


async def test_list_is_a_miss_then_a_hit_with_the_same_body(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    first = await client.get("/api/v1/tasks?sort=due_at")
    second = await client.get("/api/v1/tasks?sort=due_at&unknown=1")

    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.content == first.content
    assert second.headers["content-type"] == "application/json"
    assert len(tasks_service.requests) == 1


async def test_list_lookups_are_counted_as_hits_and_misses(client: httpx.AsyncClient) -> None:
    hits, misses = cache_requests("hit"), cache_requests("miss")

    await client.get("/api/v1/tasks?sort=due_at")
    await client.get("/api/v1/tasks?sort=due_at")
    await client.get("/api/v1/tasks?sort=due_at")

    assert (cache_requests("hit") - hits, cache_requests("miss") - misses) == (2, 1)


def cache_requests(result: str) -> float:
    labels = {"cache": "task_list", "result": result}
    return REGISTRY.get_sample_value("taskmesh_cache_requests_total", labels) or 0.0


async def test_list_queries_that_differ_are_cached_apart(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    await client.get("/api/v1/tasks?sort=due_at")
    response = await client.get("/api/v1/tasks?sort=-due_at")

    assert response.headers["x-cache"] == "MISS"
    assert len(tasks_service.requests) == 2


async def test_list_tag_order_does_not_split_the_cache(client: httpx.AsyncClient) -> None:
    await client.get("/api/v1/tasks?tag=a&tag=b")
    response = await client.get("/api/v1/tasks?tag=b&tag=a")

    assert response.headers["x-cache"] == "HIT"


async def test_admin_list_of_another_owner_is_not_cached(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    await client.get("/api/v1/tasks?owner_id=65f0c0ffee0000000000eeee")
    response = await client.get("/api/v1/tasks?owner_id=65f0c0ffee0000000000eeee")

    assert response.headers["x-cache"] == "MISS"
    assert len(tasks_service.requests) == 2


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/tasks", {"title": "x"}),
        ("PATCH", f"/api/v1/tasks/{TASK_ID}", {"status": "done"}),
        ("PUT", f"/api/v1/tasks/{TASK_ID}", {"title": "x"}),
        ("DELETE", f"/api/v1/tasks/{TASK_ID}", None),
        ("DELETE", f"/api/v1/tasks/{TASK_ID}/attachments/{ATTACHMENT_ID}", None),
    ],
)
async def test_every_write_invalidates_each_affected_user_before_answering(
    app: FastAPI, list_cache: InMemoryTaskListCache, method: str, path: str, body: Any
) -> None:
    app.dependency_overrides[get_current_user] = lambda: owner()
    invalidated_when_answering: list[set[str]] = []

    async def receive() -> dict[str, Any]:
        content = json.dumps(body).encode() if body is not None else b""
        return {"type": "http.request", "body": content, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] < 300
            invalidated_when_answering.extend(list_cache.invalidated)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"gateway")],
        "client": ("127.0.0.1", 5000),
        "server": ("gateway", 80),
        "scheme": "http",
        "root_path": "",
    }
    await app(scope, receive, send)

    assert invalidated_when_answering == [{OWNER_ID, ASSIGNEE_ID}]


async def test_a_write_answers_a_later_read_from_the_service(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    await client.get("/api/v1/tasks")
    await client.patch(f"/api/v1/tasks/{TASK_ID}", json={"status": "done"})
    response = await client.get("/api/v1/tasks")

    assert response.headers["x-cache"] == "MISS"


async def test_the_assignee_cache_is_invalidated_by_the_owners_write(
    client: httpx.AsyncClient, list_cache: InMemoryTaskListCache
) -> None:
    assignee_generation = (await list_cache.lookup(ASSIGNEE_ID, "q")).generation

    await client.patch(f"/api/v1/tasks/{TASK_ID}", json={"title": "renamed"})

    assert (await list_cache.lookup(ASSIGNEE_ID, "q")).generation != assignee_generation


async def test_a_write_the_service_names_nobody_for_still_invalidates_caller_and_task_users(
    client: httpx.AsyncClient, tasks_service: FakeTasksService, list_cache: InMemoryTaskListCache
) -> None:
    tasks_service.affected = ""

    await client.patch(f"/api/v1/tasks/{TASK_ID}", json={"title": "renamed"})

    assert list_cache.invalidated == [{OWNER_ID}]


async def test_a_refused_write_invalidates_nothing(
    client: httpx.AsyncClient, tasks_service: FakeTasksService, list_cache: InMemoryTaskListCache
) -> None:
    tasks_service.error = rpc_error(grpc.StatusCode.PERMISSION_DENIED, "only status")

    response = await client.patch(f"/api/v1/tasks/{TASK_ID}", json={"title": "x"})

    assert response.status_code == 403
    assert list_cache.invalidated == []


async def test_a_write_of_unknown_outcome_invalidates_the_caller(
    client: httpx.AsyncClient, tasks_service: FakeTasksService, list_cache: InMemoryTaskListCache
) -> None:
    tasks_service.error = rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "")

    response = await client.patch(f"/api/v1/tasks/{TASK_ID}", json={"title": "x"})

    assert response.status_code == 504
    assert list_cache.invalidated == [{OWNER_ID}]


async def test_list_is_served_uncached_while_redis_is_down(
    app: FastAPI, client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    app.state.task_list_cache = TaskListCache(
        Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    )

    first = await client.get("/api/v1/tasks")
    second = await client.get("/api/v1/tasks")

    assert (first.status_code, first.headers["x-cache"]) == (200, "MISS")
    assert (second.status_code, second.headers["x-cache"]) == (200, "MISS")
    assert len(tasks_service.requests) == 2


async def test_a_write_is_answered_while_redis_is_down(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.task_list_cache = TaskListCache(
        Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    )

    response = await client.patch(f"/api/v1/tasks/{TASK_ID}", json={"title": "x"})

    assert response.status_code == 200


# ETag and If-Match


@pytest.mark.parametrize("if_match", ['W/"7"', '"6", "7"', "7", '"seven"', '""'])
async def test_if_match_that_names_no_single_strong_version_is_412(
    client: httpx.AsyncClient, tasks_service: FakeTasksService, if_match: str
) -> None:
    response = await client.put(
        f"/api/v1/tasks/{TASK_ID}", json={"title": "x"}, headers={"If-Match": if_match}
    )

    assert response.status_code == 412
    assert tasks_service.requests == []


async def test_if_match_star_requires_no_version(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    response = await client.patch(
        f"/api/v1/tasks/{TASK_ID}", json={"title": "x"}, headers={"If-Match": "*"}
    )

    assert response.status_code == 200
    assert not tasks_service.requests[0].HasField("expected_version")


async def test_put_with_a_stale_version_is_412(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    tasks_service.error = rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "version is 8, not 7")

    response = await client.put(
        f"/api/v1/tasks/{TASK_ID}", json={"title": "x"}, headers={"If-Match": '"7"'}
    )

    assert response.status_code == 412
    assert response.headers["content-type"] == "application/problem+json"


# Uploads


def multipart(filename: str, content: bytes, boundary: str = "b0undary") -> bytes:
    return (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )


async def test_upload_over_the_limit_is_413_before_the_body_is_read(
    app: FastAPI, tasks_service: FakeTasksService
) -> None:
    app.dependency_overrides[get_current_user] = lambda: owner()
    body = multipart("big.bin", b"x" * (10 * 1024 * 1024))
    chunks = [body[start : start + 4096] for start in range(0, len(body), 4096)]
    received = 0
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        chunk = chunks[received]
        received += 1
        return {"type": "http.request", "body": chunk, "more_body": received < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    path = f"/api/v1/tasks/{TASK_ID}/attachments"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b0undary")],
        "client": ("127.0.0.1", 5000),
        "server": ("gateway", 80),
        "scheme": "http",
        "root_path": "",
    }
    await app(scope, receive, send)

    assert statuses == [413]
    # the limit (1 KiB) plus at most the bounded drain (1 MiB), of a 10 MiB body
    assert received * 4096 <= 1024 * 1024 + 3 * 4096
    assert not tasks_service.upload_finished


async def test_upload_with_a_content_length_over_the_limit_is_413_at_once(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    body = multipart("big.bin", b"x" * 40_000)

    response = await client.post(
        f"/api/v1/tasks/{TASK_ID}/attachments",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
    )

    assert response.status_code == 413
    assert tasks_service.requests == []


async def test_upload_of_exactly_the_limit_is_accepted(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    response = await client.post(
        f"/api/v1/tasks/{TASK_ID}/attachments",
        files={"file": ("limit.bin", b"y" * 1024, "application/octet-stream")},
    )

    assert response.status_code == 201
    assert b"".join(m.chunk for m in tasks_service.uploaded[1:]) == b"y" * 1024
    assert tasks_service.upload_finished


async def test_upload_that_is_not_multipart_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/api/v1/tasks/{TASK_ID}/attachments",
        content=b"raw bytes",
        headers={"Content-Type": "application/octet-stream"},
    )

    assert response.status_code == 415


async def test_upload_of_malformed_multipart_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"/api/v1/tasks/{TASK_ID}/attachments",
        content=b"--other\r\ngarbage",
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
    )

    assert response.status_code in (400, 422)


async def test_upload_stores_a_safe_content_type_and_file_name(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    await client.post(
        f"/api/v1/tasks/{TASK_ID}/attachments",
        files={"file": ("C:\\Users\\ada\\notes.txt", b"hi", "Text/Plain; charset=utf-8")},
    )

    metadata = tasks_service.uploaded[0].metadata
    assert (metadata.filename, metadata.content_type) == ("notes.txt", "text/plain")


async def test_upload_refused_by_the_service_is_its_status(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    tasks_service.error = rpc_error(grpc.StatusCode.NOT_FOUND, "task not found")

    response = await client.post(
        f"/api/v1/tasks/{TASK_ID}/attachments",
        files={"file": ("a.txt", b"a", "text/plain")},
    )

    assert response.status_code == 404


async def test_download_names_a_non_ascii_file_safely(
    client: httpx.AsyncClient, tasks_service: FakeTasksService
) -> None:
    def download(request: tasks_pb2.DownloadAttachmentRequest) -> FakeDownload:
        attachment = stored_attachment()
        attachment.filename = 'r\u00e9sum\u00e9 "final";.html'
        attachment.content_type = "text/html\r\nX-Injected: 1"
        return FakeDownload([tasks_pb2.DownloadAttachmentResponse(metadata=attachment)])

    tasks_service.DownloadAttachment = download  # type: ignore[method-assign]

    response = await client.get(f"/api/v1/tasks/{TASK_ID}/attachments/{ATTACHMENT_ID}")

    assert response.headers["content-disposition"] == (
        'attachment; filename="r_sum_ _final__.html"; '
        "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%3B.html"
    )
    assert response.headers["content-type"] == "application/octet-stream"
    assert "x-injected" not in response.headers


def owner() -> Caller:
    return Caller(
        OWNER_ID,
        Role.user,
        "jti-1",
        "sid-1",
        CREATED.timestamp() - 900,
        CREATED.timestamp(),
        "token-1",
    )
