"""The /api/v1/tasks routes: validation, proto conversion, status codes and headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_chassis.identity import Caller
from taskmesh_gateway.app import create_app
from taskmesh_gateway.dependencies import get_current_user
from taskmesh_gateway.schemas.auth import Role
from taskmesh_gateway.settings import GatewaySettings

TASK_ID = "65f0c0ffee0000000000aaaa"
OWNER_ID = "65f0c0ffee0000000000bbbb"
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


class FakeTasksService:
    """Answers like the tasks service for one task; `error`, when set, fails every call."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.error: grpc.aio.AioRpcError | None = None
        self.uploaded: list[tasks_pb2.UploadAttachmentRequest] = []

    def _record(self, request: Any) -> None:
        self.requests.append(request)
        if self.error is not None:
            raise self.error

    async def CreateTask(self, request: tasks_pb2.CreateTaskRequest) -> tasks_pb2.Task:
        self._record(request)
        return stored_task(title=request.task.title)

    async def GetTask(self, request: tasks_pb2.GetTaskRequest) -> tasks_pb2.Task:
        self._record(request)
        return stored_task(version=7)

    async def ListTasks(self, request: tasks_pb2.ListTasksRequest) -> tasks_pb2.ListTasksResponse:
        self._record(request)
        return tasks_pb2.ListTasksResponse(tasks=[stored_task()], page={"next_cursor": "c2"})

    async def UpdateTask(self, request: tasks_pb2.UpdateTaskRequest) -> tasks_pb2.Task:
        self._record(request)
        return stored_task(version=8)

    async def ReplaceTask(self, request: tasks_pb2.ReplaceTaskRequest) -> tasks_pb2.Task:
        self._record(request)
        return stored_task(version=9)

    async def DeleteTask(self, request: tasks_pb2.DeleteTaskRequest) -> Empty:
        self._record(request)
        return Empty()

    async def UploadAttachment(
        self, requests: AsyncIterator[tasks_pb2.UploadAttachmentRequest]
    ) -> tasks_pb2.Attachment:
        async for request in requests:
            self.uploaded.append(request)
        self._record(requests)
        return stored_attachment()

    async def ListAttachments(
        self, request: tasks_pb2.ListAttachmentsRequest
    ) -> tasks_pb2.ListAttachmentsResponse:
        self._record(request)
        return tasks_pb2.ListAttachmentsResponse(attachments=[stored_attachment()])

    def DownloadAttachment(self, request: tasks_pb2.DownloadAttachmentRequest) -> FakeDownload:
        self._record(request)
        return FakeDownload(
            [
                tasks_pb2.DownloadAttachmentResponse(metadata=stored_attachment()),
                tasks_pb2.DownloadAttachmentResponse(chunk=b"hello "),
                tasks_pb2.DownloadAttachmentResponse(chunk=b"world"),
            ]
        )

    async def DeleteAttachment(self, request: tasks_pb2.DeleteAttachmentRequest) -> Empty:
        self._record(request)
        return Empty()


class ServiceClientsStandIn:
    def __init__(self, tasks: FakeTasksService) -> None:
        self.tasks = tasks


@pytest.fixture
def tasks_service() -> FakeTasksService:
    return FakeTasksService()


@pytest.fixture
def app(tasks_service: FakeTasksService, open_gate: Any) -> FastAPI:
    app = create_app(GatewaySettings(max_upload_bytes=1024))
    app.state.clients = ServiceClientsStandIn(tasks_service)
    app.state.gatekeeper = open_gate
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
    assert tasks_service.uploaded == []


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
    assert response.headers["content-disposition"] == 'attachment; filename="report.txt"'


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
