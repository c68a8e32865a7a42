"""The task model and its rules: validation, who may see and change what, what a change does.

Nothing here knows gRPC or MongoDB. Errors are the domain's own, each carrying the status it
becomes at the edge (taskmesh_chassis.errors).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, Final

import grpc
from taskmesh_chassis.errors import (
    DomainError,
    FailedPrecondition,
    FieldError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from taskmesh_chassis.errors import invalid as invalid
from taskmesh_chassis.mongo import is_object_id as is_object_id

TITLE_MAX_LENGTH: Final = 200
DESCRIPTION_MAX_LENGTH: Final = 10_000
MAX_TAGS: Final = 20
TAG_MAX_LENGTH: Final = 32
FILENAME_MAX_LENGTH: Final = 255
CONTENT_TYPE_MAX_LENGTH: Final = 255
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC, to the millisecond (what MongoDB stores, so reads compare equal)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class Status(StrEnum):
    """A task's workflow state."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class Priority(IntEnum):
    """A task's priority; stored as its number so that sorting by it sorts by urgency."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    URGENT = 4


WRITABLE_FIELDS: Final = (
    "title",
    "description",
    "status",
    "priority",
    "due_at",
    "tags",
    "assignee_id",
)
"""The fields a client may set, in the order they are reported."""


@dataclass(frozen=True, slots=True)
class TaskFields:
    """The writable fields of a task, validated and normalised."""

    title: str
    description: str = ""
    status: Status = Status.TODO
    priority: Priority = Priority.MEDIUM
    due_at: datetime | None = None
    tags: tuple[str, ...] = ()
    assignee_id: str | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """A task as stored: its writable fields plus owner, timestamps and version."""

    id: str
    owner_id: str
    fields: TaskFields
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    version: int

    @property
    def assignee_id(self) -> str | None:
        """Who the task is assigned to, if anyone."""
        return self.fields.assignee_id

    def involved_user_ids(self) -> set[str]:
        """The users whose task lists hold this task: its owner and its assignee."""
        return {self.owner_id} | ({self.assignee_id} if self.assignee_id else set())


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking, as the tasks service needs to know: their id and whether they are admin."""

    user_id: str
    is_admin: bool = False


class Access(StrEnum):
    """What a viewer may do with a task."""

    NONE = "none"
    ASSIGNEE = "assignee"
    FULL = "full"


def access_of(task: Task, viewer: Viewer) -> Access:
    """Owner and admins have full access; the assignee may see it and change its status."""
    if viewer.is_admin or task.owner_id == viewer.user_id:
        return Access.FULL
    if task.assignee_id == viewer.user_id:
        return Access.ASSIGNEE
    return Access.NONE


# --- errors -----------------------------------------------------------------------------


class TaskNotFound(NotFound):
    """No such task, or the caller may not see it (the two are indistinguishable)."""

    default_message = "task not found"


class AttachmentNotFound(NotFound):
    """No such attachment on a task the caller may see."""

    default_message = "attachment not found"


class NotAllowed(PermissionDenied):
    """The caller sees the task but may not do this to it (an assignee beyond `status`)."""

    default_message = "you may not do this to this task"


class VersionConflict(FailedPrecondition):
    """The task's version is not the one the caller expected; nothing was changed."""

    default_message = "the task has changed since you read it"


class AttachmentTooLarge(ResourceExhausted):
    """An upload grew beyond the size limit; nothing was stored."""

    default_message = "the file is too large"


class AssigneeCheckUnavailable(DomainError):
    """Whether the assignee may be assigned cannot be checked now (auth is down)."""

    status_code = grpc.StatusCode.UNAVAILABLE
    default_message = "the assignee cannot be checked right now"


class AssigneeCheckTimedOut(DomainError):
    """Auth did not answer within its deadline whether the assignee may be assigned."""

    status_code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_message = "checking the assignee timed out"


# --- validation --------------------------------------------------------------------------


def normalise_tags(
    tags: Iterable[str], loc: tuple[str | int, ...]
) -> tuple[list[str], list[FieldError]]:
    """Tags lower-cased and de-duplicated in first-seen order, with the errors found."""
    result: list[str] = []
    errors: list[FieldError] = []
    for index, raw in enumerate(tags):
        tag = raw.strip().lower()
        if not 1 <= len(tag) <= TAG_MAX_LENGTH:
            errors.append(FieldError((*loc, index), f"must be 1-{TAG_MAX_LENGTH} characters"))
        elif tag not in result:
            result.append(tag)
    if len(result) > MAX_TAGS:
        errors.append(FieldError(loc, f"at most {MAX_TAGS} tags"))
    return result, errors


def check_fields(values: Mapping[str, Any], loc: tuple[str, ...] = ("body",)) -> dict[str, Any]:
    """Validate and normalise writable field values (only those given); InvalidArgument lists all.

    Expects Python values: str title/description, Status, Priority, datetime or None, a list
    of str tags, str or None assignee id.
    """
    errors: list[FieldError] = []
    clean: dict[str, Any] = {}
    for name, value in values.items():
        where = (*loc, name)
        if name == "title":
            title = value.strip()
            if not 1 <= len(title) <= TITLE_MAX_LENGTH:
                errors.append(FieldError(where, f"must be 1-{TITLE_MAX_LENGTH} characters"))
            clean[name] = title
        elif name == "description":
            if len(value) > DESCRIPTION_MAX_LENGTH:
                errors.append(FieldError(where, f"at most {DESCRIPTION_MAX_LENGTH} characters"))
            clean[name] = value
        elif name == "tags":
            tags, tag_errors = normalise_tags(value, where)
            errors.extend(tag_errors)
            clean[name] = tuple(tags)
        elif name == "assignee_id":
            if value is not None and not is_object_id(value):
                errors.append(FieldError(where, "must be the id of an existing active user"))
            clean[name] = value
        elif name in ("status", "priority", "due_at"):
            clean[name] = value
        else:
            errors.append(FieldError(where, "is not a writable field"))
    if errors:
        raise InvalidArgument("invalid task", errors)
    return clean


# --- changes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """A task before and after a write, and which of its fields changed."""

    before: Task
    after: Task
    changed_fields: tuple[str, ...] = field(default=())

    @property
    def assigned_someone(self) -> bool:
        """The assignee changed to somebody (not to nobody)."""
        return "assignee_id" in self.changed_fields and self.after.assignee_id is not None

    @property
    def completed(self) -> bool:
        """The status became done."""
        return self.before.fields.status is not Status.DONE and (
            self.after.fields.status is Status.DONE
        )

    def affected_user_ids(self) -> set[str]:
        """Everyone whose task list may differ: owner, assignee before and after."""
        return self.before.involved_user_ids() | self.after.involved_user_ids()


def changed_field_names(before: TaskFields, values: Mapping[str, Any]) -> tuple[str, ...]:
    """The writable fields whose value in `values` differs from `before`, in canonical order."""
    return tuple(
        name for name in WRITABLE_FIELDS if name in values and values[name] != getattr(before, name)
    )


def check_may_change(task: Task, viewer: Viewer, changed: Iterable[str]) -> None:
    """Owner and admins change anything; the assignee only `status`; others do not see it."""
    access = access_of(task, viewer)
    if access is Access.NONE:
        raise TaskNotFound()
    if access is Access.ASSIGNEE and set(changed) - {"status"}:
        raise NotAllowed("an assignee may change only the status")


def check_may_manage(task: Task, viewer: Viewer) -> None:
    """Deleting the task or its attachments, or attaching files: owner and admins only."""
    access = access_of(task, viewer)
    if access is Access.NONE:
        raise TaskNotFound()
    if access is Access.ASSIGNEE:
        raise NotAllowed("only the owner may do this")


def check_may_see(task: Task | None, viewer: Viewer) -> Task:
    """The task, if the viewer may see it; TaskNotFound otherwise."""
    if task is None or access_of(task, viewer) is Access.NONE:
        raise TaskNotFound()
    return task


def apply_change(task: Task, values: Mapping[str, Any], now: datetime) -> Change:
    """The task with `values` applied: a new version when anything changed.

    `completed_at` is set when the status becomes done and cleared when it leaves done.
    """
    changed = changed_field_names(task.fields, values)
    if not changed:
        return Change(task, task)
    fields = replace(task.fields, **{name: values[name] for name in changed})
    completed_at = task.completed_at
    if fields.status is Status.DONE and task.fields.status is not Status.DONE:
        completed_at = now
    elif fields.status is not Status.DONE:
        completed_at = None
    after = replace(
        task, fields=fields, updated_at=now, completed_at=completed_at, version=task.version + 1
    )
    return Change(task, after, changed)


def new_task(task_id: str, owner_id: str, fields: TaskFields, now: datetime) -> Task:
    """A task just created: version 1, completed now if created done."""
    return Task(
        id=task_id,
        owner_id=owner_id,
        fields=fields,
        created_at=now,
        updated_at=now,
        completed_at=now if fields.status is Status.DONE else None,
        version=1,
    )


# --- account deletion --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurgeJob:
    """A deleted account whose tasks are still to be deleted and assignments undone."""

    user_id: str
    actor_id: str
    requested_at: datetime


# --- attachments -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file stored on a task."""

    id: str
    task_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime


_UNSAFE_FILENAME_CHARACTERS = re.compile(r'["\\/<>:|?*]')
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


def safe_filename(name: str) -> str:
    """The last path component, without control or reserved characters; "attachment" if empty."""
    base = re.split(r"[/\\]", name)[-1]
    kept = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    kept = _UNSAFE_FILENAME_CHARACTERS.sub("_", kept).strip().lstrip(".").strip()
    return kept[:FILENAME_MAX_LENGTH] or "attachment"


def safe_content_type(content_type: str) -> str:
    """The media type (lower-cased, parameters dropped) if well-formed, else octet-stream."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if len(media_type) > CONTENT_TYPE_MAX_LENGTH or not _CONTENT_TYPE.match(media_type):
        return DEFAULT_CONTENT_TYPE
    return media_type
