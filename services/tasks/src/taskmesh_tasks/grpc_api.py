"""The gRPC edge of the tasks service: protobuf messages in, use cases, messages out.

Domain errors become their gRPC status in the chassis' error scope. Every successful write
sets the trailing metadata `x-affected-user-ids`: the comma-separated ids of every user whose
task list it may have changed (owner, assignee before and after), for the gateway's cache.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final

from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.common.v1 import common_pb2
from taskmesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from taskmesh_chassis.identity import require_caller

from taskmesh_tasks.domain import (
    WRITABLE_FIELDS,
    Attachment,
    Priority,
    Status,
    Viewer,
    check_fields,
    invalid,
)
from taskmesh_tasks.events import task_to_proto, timestamp
from taskmesh_tasks.listing import Scope, SortOrder, TaskFilter
from taskmesh_tasks.service import TasksService, Written

SERVICE_NAME: str = tasks_pb2.DESCRIPTOR.services_by_name["TasksService"].full_name

AFFECTED_USERS_KEY: Final = "x-affected-user-ids"

_STATUSES: Final = {
    tasks_pb2.STATUS_TODO: Status.TODO,
    tasks_pb2.STATUS_IN_PROGRESS: Status.IN_PROGRESS,
    tasks_pb2.STATUS_DONE: Status.DONE,
}
_PRIORITIES: Final = {
    tasks_pb2.PRIORITY_LOW: Priority.LOW,
    tasks_pb2.PRIORITY_MEDIUM: Priority.MEDIUM,
    tasks_pb2.PRIORITY_HIGH: Priority.HIGH,
    tasks_pb2.PRIORITY_URGENT: Priority.URGENT,
}
_SCOPES: Final = {
    tasks_pb2.SCOPE_UNSPECIFIED: Scope.ALL,
    tasks_pb2.SCOPE_ALL: Scope.ALL,
    tasks_pb2.SCOPE_OWNED: Scope.OWNED,
    tasks_pb2.SCOPE_ASSIGNED: Scope.ASSIGNED,
}
_SORTS: Final = {
    tasks_pb2.SORT_UNSPECIFIED: SortOrder.CREATED_AT_DESC,
    tasks_pb2.SORT_CREATED_AT_DESC: SortOrder.CREATED_AT_DESC,
    tasks_pb2.SORT_CREATED_AT_ASC: SortOrder.CREATED_AT_ASC,
    tasks_pb2.SORT_DUE_AT_ASC: SortOrder.DUE_AT_ASC,
    tasks_pb2.SORT_DUE_AT_DESC: SortOrder.DUE_AT_DESC,
    tasks_pb2.SORT_PRIORITY_DESC: SortOrder.PRIORITY_DESC,
    tasks_pb2.SORT_PRIORITY_ASC: SortOrder.PRIORITY_ASC,
    tasks_pb2.SORT_UPDATED_AT_DESC: SortOrder.UPDATED_AT_DESC,
}


def current_viewer() -> Viewer:
    """The verified caller of this RPC; Unauthenticated when there is none."""
    caller = require_caller()
    return Viewer(user_id=caller.user_id, is_admin=caller.is_admin)


def moment_from(stamp: Timestamp, loc: tuple[str, ...]) -> datetime:
    """A Timestamp as a UTC datetime to the millisecond; InvalidArgument if out of range."""
    try:
        moment = stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise invalid(loc, "is not a valid instant") from None
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def field_value(task: tasks_pb2.TaskInput, name: str) -> Any:
    """One writable field of a TaskInput as a domain value (unset/unspecified: the default)."""
    loc = ("body", name)
    if name == "status":
        if task.status == tasks_pb2.STATUS_UNSPECIFIED:
            return Status.TODO
        if task.status not in _STATUSES:
            raise invalid(loc, "must be todo, in_progress or done")
        return _STATUSES[task.status]
    if name == "priority":
        if task.priority == tasks_pb2.PRIORITY_UNSPECIFIED:
            return Priority.MEDIUM
        if task.priority not in _PRIORITIES:
            raise invalid(loc, "must be low, medium, high or urgent")
        return _PRIORITIES[task.priority]
    if name == "due_at":
        return moment_from(task.due_at, loc) if task.HasField("due_at") else None
    if name == "tags":
        return list(task.tags)
    if name == "assignee_id":
        return task.assignee_id if task.HasField("assignee_id") else None
    return getattr(task, name)


def values_from(task: tasks_pb2.TaskInput, names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The named fields of a TaskInput, checked and normalised (InvalidArgument lists errors)."""
    return check_fields({name: field_value(task, name) for name in names})


def mask_paths(request: tasks_pb2.UpdateTaskRequest) -> list[str]:
    """The update mask's paths, each a writable TaskInput field."""
    paths = list(dict.fromkeys(request.update_mask.paths))
    for path in paths:
        if path not in WRITABLE_FIELDS:
            raise invalid(("update_mask", path), "is not a writable field")
    return paths


def task_filter_from(request: tasks_pb2.ListTasksRequest) -> TaskFilter:
    """The list filters of a ListTasksRequest; InvalidArgument for unknown enum values."""
    status = priority = None
    if request.status != tasks_pb2.STATUS_UNSPECIFIED:
        if request.status not in _STATUSES:
            raise invalid(("query", "status"), "must be todo, in_progress or done")
        status = _STATUSES[request.status]
    if request.priority != tasks_pb2.PRIORITY_UNSPECIFIED:
        if request.priority not in _PRIORITIES:
            raise invalid(("query", "priority"), "must be low, medium, high or urgent")
        priority = _PRIORITIES[request.priority]
    return TaskFilter(
        status=status,
        priority=priority,
        tags=tuple(request.tags),
        assignee_id=request.assignee_id if request.HasField("assignee_id") else None,
        owner_id=request.owner_id if request.HasField("owner_id") else None,
        text=request.q,
        due_before=(
            moment_from(request.due_before, ("query", "due_before"))
            if request.HasField("due_before")
            else None
        ),
        due_after=(
            moment_from(request.due_after, ("query", "due_after"))
            if request.HasField("due_after")
            else None
        ),
    )


def attachment_to_proto(attachment: Attachment) -> tasks_pb2.Attachment:
    """The Attachment message of an attachment."""
    return tasks_pb2.Attachment(
        id=attachment.id,
        task_id=attachment.task_id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
        sha256=attachment.sha256,
        created_at=timestamp(attachment.created_at),
    )


def report_affected(context: Any, written: Written[Any]) -> None:
    """Tell the gateway whose task lists the write may have changed (trailing metadata)."""
    context.set_trailing_metadata(
        ((AFFECTED_USERS_KEY, ",".join(sorted(written.affected_user_ids))),)
    )


class TasksServicer(tasks_pb2_grpc.TasksServiceServicer):  # type: ignore[misc]
    """Serves taskmesh.tasks.v1.TasksService."""

    def __init__(self, service: TasksService) -> None:
        self._service = service

    async def CreateTask(
        self, request: tasks_pb2.CreateTaskRequest, context: Any
    ) -> tasks_pb2.Task:
        """Create a task owned by the caller."""
        viewer = current_viewer()
        written = await self._service.create_task(
            viewer, values_from(request.task, WRITABLE_FIELDS)
        )
        report_affected(context, written)
        return task_to_proto(written.value)

    async def GetTask(self, request: tasks_pb2.GetTaskRequest, context: Any) -> tasks_pb2.Task:
        """Return a task the caller may see."""
        return task_to_proto(await self._service.get_task(current_viewer(), request.task_id))

    async def ListTasks(
        self, request: tasks_pb2.ListTasksRequest, context: Any
    ) -> tasks_pb2.ListTasksResponse:
        """List the tasks the caller sees, filtered, sorted and paged by cursor."""
        viewer = current_viewer()
        if request.scope not in _SCOPES:
            raise invalid(("query", "scope"), "must be owned, assigned or all")
        if request.sort not in _SORTS:
            raise invalid(("query", "sort"), "is not a known order")
        page = await self._service.list_tasks(
            viewer,
            scope=_SCOPES[request.scope],
            task_filter=task_filter_from(request),
            sort=_SORTS[request.sort],
            limit=request.page.limit,
            cursor=request.page.cursor,
        )
        return tasks_pb2.ListTasksResponse(
            tasks=[task_to_proto(task) for task in page.tasks],
            page=common_pb2.PageInfo(next_cursor=page.next_cursor or ""),
        )

    async def UpdateTask(
        self, request: tasks_pb2.UpdateTaskRequest, context: Any
    ) -> tasks_pb2.Task:
        """Change the fields named in the update mask (version-checked when asked)."""
        viewer = current_viewer()
        values = values_from(request.task, mask_paths(request))
        expected = request.expected_version if request.HasField("expected_version") else None
        written = await self._service.update_task(viewer, request.task_id, values, expected)
        report_affected(context, written)
        return task_to_proto(written.value)

    async def ReplaceTask(
        self, request: tasks_pb2.ReplaceTaskRequest, context: Any
    ) -> tasks_pb2.Task:
        """Replace every writable field (version-checked when asked)."""
        viewer = current_viewer()
        values = values_from(request.task, WRITABLE_FIELDS)
        expected = request.expected_version if request.HasField("expected_version") else None
        written = await self._service.replace_task(viewer, request.task_id, values, expected)
        report_affected(context, written)
        return task_to_proto(written.value)

    async def DeleteTask(self, request: tasks_pb2.DeleteTaskRequest, context: Any) -> Empty:
        """Delete a task and its attachments (owner or admin)."""
        written = await self._service.delete_task(current_viewer(), request.task_id)
        report_affected(context, written)
        return Empty()

    async def UploadAttachment(
        self, request_iterator: AsyncIterator[tasks_pb2.UploadAttachmentRequest], context: Any
    ) -> tasks_pb2.Attachment:
        """Store a streamed file on a task: metadata first, then the bytes in chunks."""
        viewer = current_viewer()
        stream = aiter(request_iterator)
        first = await anext(stream, None)
        if first is None or first.WhichOneof("payload") != "metadata":
            raise invalid(("body", "metadata"), "the first message must carry the metadata")
        metadata = first.metadata
        written = await self._service.upload_attachment(
            viewer,
            metadata.task_id,
            metadata.filename,
            metadata.content_type,
            _chunks(stream),
        )
        report_affected(context, written)
        return attachment_to_proto(written.value)

    async def ListAttachments(
        self, request: tasks_pb2.ListAttachmentsRequest, context: Any
    ) -> tasks_pb2.ListAttachmentsResponse:
        """List a task's attachments, oldest first."""
        attachments = await self._service.list_attachments(current_viewer(), request.task_id)
        return tasks_pb2.ListAttachmentsResponse(
            attachments=[attachment_to_proto(attachment) for attachment in attachments]
        )

    async def DownloadAttachment(
        self, request: tasks_pb2.DownloadAttachmentRequest, context: Any
    ) -> AsyncIterator[tasks_pb2.DownloadAttachmentResponse]:
        """Stream an attachment: its metadata, then its bytes chunk by chunk."""
        attachment, chunks = await self._service.download_attachment(
            current_viewer(), request.task_id, request.attachment_id
        )
        yield tasks_pb2.DownloadAttachmentResponse(metadata=attachment_to_proto(attachment))
        async for chunk in chunks:
            yield tasks_pb2.DownloadAttachmentResponse(chunk=chunk)

    async def DeleteAttachment(
        self, request: tasks_pb2.DeleteAttachmentRequest, context: Any
    ) -> Empty:
        """Delete an attachment (owner or admin)."""
        written = await self._service.delete_attachment(
            current_viewer(), request.task_id, request.attachment_id
        )
        report_affected(context, written)
        return Empty()


async def _chunks(
    requests: AsyncIterator[tasks_pb2.UploadAttachmentRequest],
) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("payload") != "chunk":
            raise invalid(("body", "chunk"), "only the first message carries metadata")
        yield request.chunk
