"""`/api/v1/tasks`: tasks and their attachments."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import (
    APIRouter,
    File,
    Header,
    HTTPException,
    Path,
    Query,
    Response,
    UploadFile,
    status,
)
from fastapi.responses import StreamingResponse
from taskmesh.tasks.v1 import tasks_pb2

from taskmesh_gateway.dependencies import Clients, CurrentUser, Settings
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

PREFIX = "/api/v1/tasks"
UPLOAD_CHUNK_BYTES = 64 * 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"

router = APIRouter(prefix=PREFIX, tags=["tasks"])

TaskId = Annotated[ResourceId, Path(alias="id")]
AttachmentId = Annotated[ResourceId, Path(alias="att_id")]
IfMatch = Annotated[
    str | None,
    Header(description='`"<version>"` from the ETag; the change is refused with 412 otherwise'),
]

_ENTITY_TAG = re.compile(r'\s*"(\d{1,18})"\s*')
_ETAG_HEADER = {"ETag": {"description": 'The task\'s version, `"<version>"`'}}


def etag(task: Task) -> str:
    """The strong entity tag of a task: its version, quoted."""
    return f'"{task.version}"'


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header requires; None when it requires none (absent or `*`).

    A header that names no version of ours can match nothing, so it is answered 412.
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


def content_disposition(filename: str) -> str:
    """An `attachment` Content-Disposition naming the file (RFC 6266, with a UTF-8 form)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def _upload_filename(file: UploadFile) -> str:
    name = PurePosixPath((file.filename or "").replace("\\", "/")).name
    return name or "upload"


async def _upload_messages(
    task_id: str, file: UploadFile
) -> AsyncIterator[tasks_pb2.UploadAttachmentRequest]:
    yield tasks_pb2.UploadAttachmentRequest(
        metadata=tasks_pb2.AttachmentUpload(
            task_id=task_id,
            filename=_upload_filename(file),
            content_type=file.content_type or DEFAULT_CONTENT_TYPE,
        )
    )
    while chunk := await file.read(UPLOAD_CHUNK_BYTES):
        yield tasks_pb2.UploadAttachmentRequest(chunk=chunk)


async def _remaining_chunks(call: Any, messages: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    try:
        async for message in messages:
            yield message.chunk
    finally:
        call.cancel()


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
    body: TaskCreate, caller: CurrentUser, clients: Clients, response: Response
) -> Task:
    """Create a task owned by the caller."""
    reply = await clients.tasks.CreateTask(tasks_pb2.CreateTaskRequest(task=body.to_proto()))
    task = task_from_proto(reply)
    response.headers["Location"] = f"{PREFIX}/{task.id}"
    response.headers["ETag"] = etag(task)
    return task


@router.get("", responses=problem_responses(401, 422))
async def list_tasks(
    query: Annotated[TaskListQuery, Query()], caller: CurrentUser, clients: Clients
) -> TaskPage:
    """List the tasks the caller owns or is assigned, filtered and sorted."""
    return task_page_from_proto(await clients.tasks.ListTasks(query.to_proto()))


@router.get(
    "/{id}",
    responses={status.HTTP_200_OK: {"headers": _ETAG_HEADER}, **problem_responses(401, 404)},
)
async def read_task(
    task_id: TaskId, caller: CurrentUser, clients: Clients, response: Response
) -> Task:
    """Return a task the caller may see."""
    task = task_from_proto(await clients.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id)))
    response.headers["ETag"] = etag(task)
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
    response: Response,
    if_match: IfMatch = None,
) -> Task:
    """Change some fields of a task; the assignee may change only `status`."""
    request = body.to_proto(task_id, expected_version(if_match))
    task = task_from_proto(await clients.tasks.UpdateTask(request))
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
    response: Response,
    if_match: IfMatch = None,
) -> Task:
    """Replace every writable field of a task; omitted fields take their defaults."""
    request = tasks_pb2.ReplaceTaskRequest(
        task_id=task_id, task=body.to_proto(), expected_version=expected_version(if_match)
    )
    task = task_from_proto(await clients.tasks.ReplaceTask(request))
    response.headers["ETag"] = etag(task)
    return task


@router.delete(
    "/{id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403, 404)
)
async def delete_task(task_id: TaskId, caller: CurrentUser, clients: Clients) -> None:
    """Delete a task and its attachments (owner or admin)."""
    await clients.tasks.DeleteTask(tasks_pb2.DeleteTaskRequest(task_id=task_id))


@router.post(
    "/{id}/attachments",
    status_code=status.HTTP_201_CREATED,
    responses={
        status.HTTP_201_CREATED: {"headers": {"Location": {"description": "URL of the file"}}},
        **problem_responses(401, 403, 404, 413, 415, 422),
    },
)
async def upload_attachment(
    task_id: TaskId,
    file: Annotated[UploadFile, File(description="The file (10 MiB at most by default)")],
    caller: CurrentUser,
    clients: Clients,
    settings: Settings,
    response: Response,
) -> Attachment:
    """Store a file on a task."""
    if file.size is not None and file.size > settings.max_upload_bytes:
        raise HTTPException(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"The file is larger than {settings.max_upload_bytes} bytes",
        )
    reply = await clients.tasks.UploadAttachment(_upload_messages(task_id, file))
    attachment = attachment_from_proto(reply)
    response.headers["Location"] = f"{PREFIX}/{task_id}/attachments/{attachment.id}"
    return attachment


@router.get("/{id}/attachments", responses=problem_responses(401, 404))
async def list_attachments(
    task_id: TaskId, caller: CurrentUser, clients: Clients
) -> list[Attachment]:
    """List a task's attachments, oldest first."""
    reply = await clients.tasks.ListAttachments(tasks_pb2.ListAttachmentsRequest(task_id=task_id))
    return [attachment_from_proto(attachment) for attachment in reply.attachments]


@router.get(
    "/{id}/attachments/{att_id}",
    response_class=StreamingResponse,
    responses={
        status.HTTP_200_OK: {
            "description": "The file's bytes, with its stored content type",
            "content": {DEFAULT_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "headers": {"Content-Disposition": {"description": "attachment; filename=..."}},
        },
        **problem_responses(401, 404),
    },
)
async def download_attachment(
    task_id: TaskId, attachment_id: AttachmentId, caller: CurrentUser, clients: Clients
) -> StreamingResponse:
    """Download an attachment."""
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
        media_type=metadata.content_type or DEFAULT_CONTENT_TYPE,
        headers={
            "Content-Disposition": content_disposition(metadata.filename),
            "Content-Length": str(metadata.size),
        },
    )


@router.delete(
    "/{id}/attachments/{att_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_attachment(
    task_id: TaskId, attachment_id: AttachmentId, caller: CurrentUser, clients: Clients
) -> None:
    """Delete an attachment (owner or admin)."""
    await clients.tasks.DeleteAttachment(
        tasks_pb2.DeleteAttachmentRequest(task_id=task_id, attachment_id=attachment_id)
    )
