"""`/api/v1/tasks`: tasks and their attachments.

Every write tells the list cache which users it affected (the service's `x-affected-user-ids`
trailing metadata, plus the caller) before it answers; `GET /api/v1/tasks` reads through that
cache (`taskmesh_gateway.task_list_cache`). Uploads stream from the client to the service
(`taskmesh_gateway.uploads`); downloads stream back.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final
from urllib.parse import quote

import grpc
import structlog
from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from redis.exceptions import RedisError
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_chassis.identity import Caller

from taskmesh_gateway.dependencies import Clients, CurrentUser, Settings, TaskListCacheDep
from taskmesh_gateway.metrics import count_cache_lookup
from taskmesh_gateway.schemas.common import ResourceId
from taskmesh_gateway.schemas.problems import problem_responses
from taskmesh_gateway.schemas.tasks import (
    Attachment,
    Task,
    TaskCreate,
    TaskListQuery,
    TaskPage,
    TaskPatch,
    TaskReplace,
    attachment_from_proto,
    task_from_proto,
    task_page_from_proto,
)
from taskmesh_gateway.task_list_cache import TaskListCache
from taskmesh_gateway.uploads import (
    DEFAULT_CONTENT_TYPE,
    MultipartFileReader,
    UploadError,
    UploadTooLarge,
    boundary_of,
    media_type,
)

log = structlog.get_logger(__name__)

PREFIX = "/api/v1/tasks"
AFFECTED_USERS_METADATA: Final = "x-affected-user-ids"
JSON_MEDIA_TYPE: Final = "application/json"

router = APIRouter(prefix=PREFIX, tags=["tasks"])

TaskId = Annotated[ResourceId, Path(alias="id")]
AttachmentId = Annotated[ResourceId, Path(alias="att_id")]
IfMatch = Annotated[
    str | None,
    Header(description='`"<version>"` from the ETag; the change is refused with 412 otherwise'),
]

IfNoneMatch = Annotated[
    str | None,
    Header(description='ETags the client holds (`"<version>"`, or `*`): 304 when one is current'),
]

_ENTITY_TAG = re.compile(r'\s*"(\d{1,18})"\s*')
_ETAG_HEADER = {"ETag": {"description": 'The task\'s version, `"<version>"`'}}
_X_CACHE_HEADER = {"X-Cache": {"description": "`HIT` when served from the cache, else `MISS`"}}

_WRITE_NOT_DONE = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
"""Codes by which the service says a write did not happen; after any other (a timeout, a lost
connection) it may have, so the caller's cached lists are dropped all the same."""


def etag(task: Task) -> str:
    """The strong entity tag of a task: its version, quoted."""
    return f'"{task.version}"'


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header requires; None when it requires none (absent or `*`).

    If-Match compares strongly (RFC 9110 §13.1.1): a weak tag (`W/"7"`), a list of several
    tags or anything that is not one of our ETags can match no version, so it is answered 412.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    match = _ENTITY_TAG.fullmatch(if_match)
    if match is None:
        raise HTTPException(
            status_code=status.HTTP_412_PRECONDITION_FAILED,
            detail='If-Match must be the task\'s ETag, "<version>"',
        )
    return int(match.group(1))


def still_current(if_none_match: str | None, current: str) -> bool:
    """Whether an If-None-Match header names the current ETag (RFC 9110 §13.1.2).

    The comparison is weak (`W/"7"` matches `"7"`), a list matches when any member does,
    and `*` matches any current representation.
    """
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    held = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return current in held


def content_disposition(filename: str) -> str:
    """An `attachment` Content-Disposition naming the file (RFC 6266: ASCII fallback + UTF-8)."""
    name = "".join(char for char in filename if char.isprintable()) or "download"
    fallback = "".join(char if char.isascii() and char not in '"\\/;%' else "_" for char in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def _affected_users(call: Any) -> set[str]:
    trailing_metadata = getattr(call, "trailing_metadata", None)
    if trailing_metadata is None:
        return set()
    metadata = await trailing_metadata()
    affected: set[str] = set()
    for key, value in metadata or ():
        if key == AFFECTED_USERS_METADATA and isinstance(value, str):
            affected.update(user_id.strip() for user_id in value.split(",") if user_id.strip())
    return affected


async def _invalidate(cache: TaskListCache, user_ids: set[str]) -> None:
    try:
        await cache.invalidate(user_ids)
    except RedisError as error:
        # The write is done and must be answered as such; the entries it could not reach
        # still expire with their TTL.
        log.error(
            "task_list_cache.invalidation_failed",
            error_type=type(error).__name__,
            user_ids=sorted(user_ids),
        )


async def _finish_write(call: Any, caller: Caller, cache: TaskListCache) -> Any:
    """Await a write RPC, then invalidate the lists of every user it affected, then return."""
    try:
        reply = await call
    except grpc.aio.AioRpcError as error:
        if error.code() not in _WRITE_NOT_DONE:
            await _invalidate(cache, {caller.user_id})
        raise
    affected = await _affected_users(call)
    if isinstance(reply, tasks_pb2.Task):
        # Covers a service that names nobody; the previous assignee only it can name.
        affected.add(reply.owner_id)
        if reply.HasField("assignee_id"):
            affected.add(reply.assignee_id)
    await _invalidate(cache, {caller.user_id, *affected})
    return reply


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        status.HTTP_201_CREATED: {
            "headers": {"Location": {"description": "URL of the new task"}, **_ETAG_HEADER}
        },
        **problem_responses(401, 422),
    },
)
async def create_task(
    body: TaskCreate,
    caller: CurrentUser,
    clients: Clients,
    cache: TaskListCacheDep,
    response: Response,
) -> Task:
    """Create a task owned by the caller."""
    call = clients.tasks.CreateTask(tasks_pb2.CreateTaskRequest(task=body.to_proto()))
    task = task_from_proto(await _finish_write(call, caller, cache))
    response.headers["Location"] = f"{PREFIX}/{task.id}"
    response.headers["ETag"] = etag(task)
    return task


@router.get(
    "",
    response_model=TaskPage,
    responses={status.HTTP_200_OK: {"headers": _X_CACHE_HEADER}, **problem_responses(401, 422)},
)
async def list_tasks(
    query: Annotated[TaskListQuery, Query()],
    caller: CurrentUser,
    clients: Clients,
    cache: TaskListCacheDep,
) -> Response:
    """List the tasks the caller owns or is assigned, filtered and sorted (cached 5 minutes)."""
    cached = None
    query_key = query.cache_key(caller.role)
    # A list of another owner's tasks (admins) changes with writes that name other users
    # than the caller, so only lists of the caller's own tasks are cached.
    if query.owner_id is None or query.owner_id == caller.user_id:
        try:
            cached = await cache.lookup(caller.user_id, query_key)
        except RedisError as error:
            log.warning("task_list_cache.unavailable", error_type=type(error).__name__)
    if cached is not None and cached.body is not None:
        count_cache_lookup("task_list", hit=True)
        return Response(cached.body, media_type=JSON_MEDIA_TYPE, headers={"X-Cache": "HIT"})
    count_cache_lookup("task_list", hit=False)
    page = task_page_from_proto(await clients.tasks.ListTasks(query.to_proto()))
    body = page.model_dump_json().encode()
    if cached is not None:
        try:
            await cache.fill(caller.user_id, cached.generation, query_key, body)
        except RedisError as error:
            log.warning("task_list_cache.unavailable", error_type=type(error).__name__)
    return Response(body, media_type=JSON_MEDIA_TYPE, headers={"X-Cache": "MISS"})


@router.get(
    "/{id}",
    response_model=Task,
    responses={
        status.HTTP_200_OK: {"headers": _ETAG_HEADER},
        status.HTTP_304_NOT_MODIFIED: {
            "description": "The version named by If-None-Match is still current (no body)",
            "headers": _ETAG_HEADER,
        },
        **problem_responses(401, 404),
    },
)
async def read_task(
    task_id: TaskId,
    caller: CurrentUser,
    clients: Clients,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> Task | Response:
    """Return a task the caller may see; 304 when the client's copy is current."""
    task = task_from_proto(await clients.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id)))
    current = etag(task)
    if still_current(if_none_match, current):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": current})
    response.headers["ETag"] = current
    return task


@router.patch(
    "/{id}",
    responses={
        status.HTTP_200_OK: {"headers": _ETAG_HEADER},
        **problem_responses(401, 403, 404, 412, 422),
    },
)
async def update_task(
    task_id: TaskId,
    body: TaskPatch,
    caller: CurrentUser,
    clients: Clients,
    cache: TaskListCacheDep,
    response: Response,
    if_match: IfMatch = None,
) -> Task:
    """Change some fields of a task; the assignee may change only `status`."""
    call = clients.tasks.UpdateTask(body.to_proto(task_id, expected_version(if_match)))
    task = task_from_proto(await _finish_write(call, caller, cache))
    response.headers["ETag"] = etag(task)
    return task


@router.put(
    "/{id}",
    responses={
        status.HTTP_200_OK: {"headers": _ETAG_HEADER},
        **problem_responses(401, 403, 404, 412, 422),
    },
)
async def replace_task(
    task_id: TaskId,
    body: TaskReplace,
    caller: CurrentUser,
    clients: Clients,
    cache: TaskListCacheDep,
    response: Response,
    if_match: IfMatch = None,
) -> Task:
    """Replace every writable field of a task; omitted fields take their defaults."""
    request = tasks_pb2.ReplaceTaskRequest(
        task_id=task_id, task=body.to_proto(), expected_version=expected_version(if_match)
    )
    task = task_from_proto(await _finish_write(clients.tasks.ReplaceTask(request), caller, cache))
    response.headers["ETag"] = etag(task)
    return task


@router.delete(
    "/{id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403, 404)
)
async def delete_task(
    task_id: TaskId, caller: CurrentUser, clients: Clients, cache: TaskListCacheDep
) -> None:
    """Delete a task and its attachments (owner or admin)."""
    call = clients.tasks.DeleteTask(tasks_pb2.DeleteTaskRequest(task_id=task_id))
    await _finish_write(call, caller, cache)


_MULTIPART_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The file (10 MiB at most by default)",
                    }
                },
            }
        }
    },
}


@router.post(
    "/{id}/attachments",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": _MULTIPART_BODY},
    responses={
        status.HTTP_201_CREATED: {"headers": {"Location": {"description": "URL of the file"}}},
        **problem_responses(400, 401, 403, 404, 413, 415, 422),
    },
)
async def upload_attachment(
    task_id: TaskId,
    request: Request,
    caller: CurrentUser,
    clients: Clients,
    settings: Settings,
    cache: TaskListCacheDep,
    response: Response,
) -> Attachment:
    """Store a file on a task: the `file` part streams to the service as it arrives."""
    reader: MultipartFileReader | None = None
    try:
        boundary = boundary_of(request.headers.get("content-type"))
        reader = MultipartFileReader(
            request.stream(), boundary, field="file", max_file_bytes=settings.max_upload_bytes
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > reader.max_body_bytes:
            raise UploadTooLarge(f"The file is larger than {settings.max_upload_bytes} bytes.")
        attachment = await _upload(task_id, reader, clients.tasks, caller, cache)
    except UploadError as error:
        if isinstance(error, UploadTooLarge) and reader is not None:
            log.info("attachment.too_large", task_id=task_id)
            await reader.discard_rest()
        raise HTTPException(status_code=error.status, detail=error.detail) from error
    response.headers["Location"] = f"{PREFIX}/{task_id}/attachments/{attachment.id}"
    return attachment


async def _upload(
    task_id: str,
    reader: MultipartFileReader,
    tasks: Any,
    caller: Caller,
    cache: TaskListCache,
) -> Attachment:
    part = await reader.open()
    call = tasks.UploadAttachment()
    metadata = tasks_pb2.AttachmentUpload(
        task_id=task_id, filename=part.filename, content_type=part.content_type
    )
    try:
        await call.write(tasks_pb2.UploadAttachmentRequest(metadata=metadata))
        async for chunk in reader.chunks():
            await call.write(tasks_pb2.UploadAttachmentRequest(chunk=chunk))
        await call.done_writing()
    except asyncio.InvalidStateError:
        pass  # the service ended the call early; awaiting it below raises its status
    except BaseException:
        call.cancel()
        raise
    return attachment_from_proto(await _finish_write(call, caller, cache))


@router.get("/{id}/attachments", responses=problem_responses(401, 404))
async def list_attachments(
    task_id: TaskId, caller: CurrentUser, clients: Clients
) -> list[Attachment]:
    """List a task's attachments, oldest first."""
    reply = await clients.tasks.ListAttachments(tasks_pb2.ListAttachmentsRequest(task_id=task_id))
    return [attachment_from_proto(attachment) for attachment in reply.attachments]


async def _remaining_chunks(call: Any, messages: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    try:
        async for message in messages:
            yield message.chunk
    finally:
        call.cancel()


@router.get(
    "/{id}/attachments/{att_id}",
    response_class=StreamingResponse,
    responses={
        status.HTTP_200_OK: {
            "description": "The file's bytes, with its stored content type",
            "content": {DEFAULT_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "headers": {"Content-Disposition": {"description": "attachment; filename*=UTF-8''..."}},
        },
        **problem_responses(401, 404),
    },
)
async def download_attachment(
    task_id: TaskId, attachment_id: AttachmentId, caller: CurrentUser, clients: Clients
) -> StreamingResponse:
    """Download an attachment: always as an attachment, never rendered by the browser."""
    call = clients.tasks.DownloadAttachment(
        tasks_pb2.DownloadAttachmentRequest(task_id=task_id, attachment_id=attachment_id)
    )
    messages = aiter(call)
    first = await anext(messages, None)
    if first is None or first.WhichOneof("payload") != "metadata":
        call.cancel()
        raise RuntimeError("DownloadAttachment did not start with the attachment's metadata")
    metadata = first.metadata
    return StreamingResponse(
        _remaining_chunks(call, messages),
        media_type=media_type(metadata.content_type),
        headers={
            "Content-Disposition": content_disposition(metadata.filename),
            "Content-Length": str(metadata.size),
            "Cache-Control": "private, no-store",
        },
    )


@router.delete(
    "/{id}/attachments/{att_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_attachment(
    task_id: TaskId,
    attachment_id: AttachmentId,
    caller: CurrentUser,
    clients: Clients,
    cache: TaskListCacheDep,
) -> None:
    """Delete an attachment (owner or admin)."""
    call = clients.tasks.DeleteAttachment(
        tasks_pb2.DeleteAttachmentRequest(task_id=task_id, attachment_id=attachment_id)
    )
    await _finish_write(call, caller, cache)
