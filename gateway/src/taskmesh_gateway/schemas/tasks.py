"""Bodies, queries and answers of `/api/v1/tasks`."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, ClassVar

from google.protobuf.field_mask_pb2 import FieldMask
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, model_validator
from taskmesh.tasks.v1 import tasks_pb2

from taskmesh_gateway.schemas.common import (
    DEFAULT_PAGE_LIMIT,
    MAX_PAGE_LIMIT,
    Page,
    PartialUpdate,
    RequestBody,
    UtcDatetime,
    datetime_from_proto,
    next_cursor_from_proto,
    optional_datetime_from_proto,
    page_request,
    timestamp_to_proto,
)

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=10_000)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Tags = Annotated[list[Tag], Field(max_length=20, description="At most 20 tags of 1-32 characters")]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Status(StrEnum):
    """A task's workflow state."""

    todo = "todo"
    in_progress = "in_progress"
    done = "done"


class Priority(StrEnum):
    """A task's priority."""

    low = "low"
    medium = "medium"
    high = "high"
    urgent = "urgent"


class Scope(StrEnum):
    """Which tasks a list covers: owned, assigned, or both."""

    owned = "owned"
    assigned = "assigned"
    all = "all"


class SortOrder(StrEnum):
    """Order of a task list; a leading `-` means descending."""

    created_at_desc = "-created_at"
    created_at_asc = "created_at"
    due_at_asc = "due_at"
    due_at_desc = "-due_at"
    priority_desc = "-priority"
    priority_asc = "priority"
    updated_at_desc = "-updated_at"


_STATUS_TO_PROTO = {
    Status.todo: tasks_pb2.STATUS_TODO,
    Status.in_progress: tasks_pb2.STATUS_IN_PROGRESS,
    Status.done: tasks_pb2.STATUS_DONE,
}
_STATUS_FROM_PROTO = {value: status for status, value in _STATUS_TO_PROTO.items()}
_PRIORITY_TO_PROTO = {
    Priority.low: tasks_pb2.PRIORITY_LOW,
    Priority.medium: tasks_pb2.PRIORITY_MEDIUM,
    Priority.high: tasks_pb2.PRIORITY_HIGH,
    Priority.urgent: tasks_pb2.PRIORITY_URGENT,
}
_PRIORITY_FROM_PROTO = {value: priority for priority, value in _PRIORITY_TO_PROTO.items()}
_SCOPE_TO_PROTO = {
    Scope.all: tasks_pb2.SCOPE_ALL,
    Scope.owned: tasks_pb2.SCOPE_OWNED,
    Scope.assigned: tasks_pb2.SCOPE_ASSIGNED,
}
_SORT_TO_PROTO = {
    SortOrder.created_at_desc: tasks_pb2.SORT_CREATED_AT_DESC,
    SortOrder.created_at_asc: tasks_pb2.SORT_CREATED_AT_ASC,
    SortOrder.due_at_asc: tasks_pb2.SORT_DUE_AT_ASC,
    SortOrder.due_at_desc: tasks_pb2.SORT_DUE_AT_DESC,
    SortOrder.priority_desc: tasks_pb2.SORT_PRIORITY_DESC,
    SortOrder.priority_asc: tasks_pb2.SORT_PRIORITY_ASC,
    SortOrder.updated_at_desc: tasks_pb2.SORT_UPDATED_AT_DESC,
}


class Task(BaseModel):
    """A task."""

    id: str
    owner_id: str
    assignee_id: str | None
    title: str
    description: str
    status: Status
    priority: Priority
    due_at: UtcDatetime | None
    tags: list[str]
    created_at: UtcDatetime
    updated_at: UtcDatetime
    completed_at: UtcDatetime | None
    version: int = Field(description="Starts at 1, grows by one on every change; the ETag")


class TaskPage(Page[Task]):
    """A page of tasks."""


class TaskFields(RequestBody):
    """Every writable field of a task; omitted ones take their defaults."""

    title: Title
    description: Description = ""
    status: Status = Status.todo
    priority: Priority = Priority.medium
    due_at: AwareDatetime | None = None
    tags: Tags = Field(default_factory=list)
    assignee_id: UserId | None = Field(default=None, description="An existing active user")

    def to_proto(self) -> tasks_pb2.TaskInput:
        """The TaskInput RPC message."""
        return tasks_pb2.TaskInput(
            title=self.title,
            description=self.description,
            status=_STATUS_TO_PROTO[self.status],
            priority=_PRIORITY_TO_PROTO[self.priority],
            due_at=timestamp_to_proto(self.due_at) if self.due_at is not None else None,
            tags=self.tags,
            assignee_id=self.assignee_id,
        )


class TaskCreate(TaskFields):
    """A new task, owned by the caller."""


class TaskReplace(TaskFields):
    """The full writable state of a task (PUT)."""


class TaskPatch(PartialUpdate):
    """Changes to a task; omitted fields stay unchanged, `null` clears `due_at` or `assignee_id`."""

    nullable_fields: ClassVar[frozenset[str]] = frozenset({"due_at", "assignee_id"})

    title: Title | None = None
    description: Description | None = None
    status: Status | None = None
    priority: Priority | None = None
    due_at: AwareDatetime | None = None
    tags: Tags | None = None
    assignee_id: UserId | None = None

    def to_proto(self, task_id: str, expected_version: int | None) -> tasks_pb2.UpdateTaskRequest:
        """The UpdateTask RPC message; the mask names exactly the fields the body sent."""
        changed = [name for name in type(self).model_fields if name in self.model_fields_set]
        task = tasks_pb2.TaskInput(
            title=self.title or "",
            description=self.description or "",
            status=_STATUS_TO_PROTO[self.status] if self.status else tasks_pb2.STATUS_UNSPECIFIED,
            priority=(
                _PRIORITY_TO_PROTO[self.priority]
                if self.priority
                else tasks_pb2.PRIORITY_UNSPECIFIED
            ),
            due_at=timestamp_to_proto(self.due_at) if self.due_at is not None else None,
            tags=self.tags or [],
            assignee_id=self.assignee_id,
        )
        return tasks_pb2.UpdateTaskRequest(
            task_id=task_id,
            task=task,
            update_mask=FieldMask(paths=changed),
            expected_version=expected_version,
        )


class TaskListQuery(BaseModel):
    """Filters, order and paging of a task list."""

    status: Status | None = None
    priority: Priority | None = None
    tag: list[Tag] = Field(default_factory=list, description="Repeatable; all must match")
    assignee_id: UserId | None = None
    owner_id: UserId | None = Field(default=None, description="Admins only")
    scope: Scope = Scope.all
    q: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        default=None, description="Case-insensitive substring of title or description"
    )
    due_before: AwareDatetime | None = None
    due_after: AwareDatetime | None = None
    sort: SortOrder = SortOrder.created_at_desc
    limit: int = Field(default=DEFAULT_PAGE_LIMIT, ge=1, le=MAX_PAGE_LIMIT)
    cursor: Annotated[str, StringConstraints(max_length=1024)] | None = None

    @model_validator(mode="after")
    def _due_range_is_ordered(self) -> TaskListQuery:
        if self.due_before and self.due_after and self.due_after >= self.due_before:
            raise ValueError("due_after must be earlier than due_before")
        return self

    def cache_key(self, role: str) -> str:
        """A digest of the query in normal form: equal for queries that must list the same."""
        fields = self.model_dump(mode="json")
        fields["tag"] = sorted(set(fields["tag"]))
        fields["role"] = role
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_proto(self) -> tasks_pb2.ListTasksRequest:
        """The ListTasks RPC message."""
        return tasks_pb2.ListTasksRequest(
            page=page_request(self.limit, self.cursor),
            status=_STATUS_TO_PROTO[self.status] if self.status else tasks_pb2.STATUS_UNSPECIFIED,
            priority=(
                _PRIORITY_TO_PROTO[self.priority]
                if self.priority
                else tasks_pb2.PRIORITY_UNSPECIFIED
            ),
            tags=self.tag,
            assignee_id=self.assignee_id,
            owner_id=self.owner_id,
            scope=_SCOPE_TO_PROTO[self.scope],
            q=self.q or "",
            due_before=timestamp_to_proto(self.due_before) if self.due_before else None,
            due_after=timestamp_to_proto(self.due_after) if self.due_after else None,
            sort=_SORT_TO_PROTO[self.sort],
        )


class Attachment(BaseModel):
    """A file stored on a task."""

    id: str
    filename: str
    content_type: str
    size: int = Field(description="Bytes")
    sha256: str = Field(description="Lower-case hex SHA-256 of the content")
    created_at: UtcDatetime


def task_from_proto(task: tasks_pb2.Task) -> Task:
    """Convert a proto Task."""
    return Task(
        id=task.id,
        owner_id=task.owner_id,
        assignee_id=task.assignee_id if task.HasField("assignee_id") else None,
        title=task.title,
        description=task.description,
        status=_STATUS_FROM_PROTO.get(task.status, Status.todo),
        priority=_PRIORITY_FROM_PROTO.get(task.priority, Priority.medium),
        due_at=optional_datetime_from_proto(task, "due_at"),
        tags=list(task.tags),
        created_at=datetime_from_proto(task.created_at),
        updated_at=datetime_from_proto(task.updated_at),
        completed_at=optional_datetime_from_proto(task, "completed_at"),
        version=task.version,
    )


def task_page_from_proto(response: tasks_pb2.ListTasksResponse) -> TaskPage:
    """Convert a ListTasks answer."""
    return TaskPage(
        items=[task_from_proto(task) for task in response.tasks],
        next_cursor=next_cursor_from_proto(response.page),
    )


def attachment_from_proto(attachment: tasks_pb2.Attachment) -> Attachment:
    """Convert a proto Attachment."""
    return Attachment(
        id=attachment.id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
        sha256=attachment.sha256,
        created_at=datetime_from_proto(attachment.created_at),
    )
