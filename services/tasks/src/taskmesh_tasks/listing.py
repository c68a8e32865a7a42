"""What a task list asks for: filters, scope, sort order and the keyset cursor.

A cursor is the position after the last task of a page: the sort key's value there and the
task id, which breaks ties. It is `base64url(JSON)` of `{"v": 1, "s": <sort>, "k": <key>,
"i": <task id>}` (dates as RFC 3339 strings, priorities as numbers), opaque to clients and
validated field by field when it comes back.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from taskmesh_chassis.errors import FieldError, InvalidArgument

from taskmesh_tasks.domain import (
    MAX_TAGS,
    Priority,
    Status,
    Task,
    Viewer,
    invalid,
    is_object_id,
    normalise_tags,
)

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
MAX_CURSOR_LENGTH: Final = 512
MAX_QUERY_LENGTH: Final = 200
CURSOR_VERSION: Final = 1
NO_DUE_DATE: Final = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
"""The sort key of a task without a due date: after every real one."""

SortKey = datetime | int


class Scope(StrEnum):
    """Which of the caller's tasks a list covers."""

    ALL = "all"
    OWNED = "owned"
    ASSIGNED = "assigned"


class SortOrder(StrEnum):
    """The orders of a task list (API names); every one breaks ties by task id."""

    CREATED_AT_DESC = "-created_at"
    CREATED_AT_ASC = "created_at"
    DUE_AT_ASC = "due_at"
    DUE_AT_DESC = "-due_at"
    PRIORITY_DESC = "-priority"
    PRIORITY_ASC = "priority"
    UPDATED_AT_DESC = "-updated_at"

    @property
    def key(self) -> str:
        """The stored field the order sorts by (`due_key`: due date, or NO_DUE_DATE)."""
        name = self.value.lstrip("-")
        return "due_key" if name == "due_at" else name

    @property
    def descending(self) -> bool:
        """Whether the order is descending."""
        return self.value.startswith("-")


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last task's sort key and id."""

    key: SortKey
    task_id: str


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """The list's filters; None / empty means not filtered on that."""

    status: Status | None = None
    priority: Priority | None = None
    tags: tuple[str, ...] = ()
    assignee_id: str | None = None
    owner_id: str | None = None
    text: str = ""
    due_before: datetime | None = None
    due_after: datetime | None = None


NO_FILTER: Final = TaskFilter()


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One page of a task list, as asked by one viewer."""

    viewer: Viewer
    scope: Scope = Scope.ALL
    filter: TaskFilter = NO_FILTER
    sort: SortOrder = SortOrder.CREATED_AT_DESC
    limit: int = DEFAULT_LIMIT
    after: Position | None = None


def check_limit(limit: int) -> int:
    """The page size: 0 means the default; otherwise 1-100 (InvalidArgument outside)."""
    if limit == 0:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(("query", "limit"), f"must be 1-{MAX_LIMIT}")
    return limit


def check_filter(task_filter: TaskFilter) -> TaskFilter:
    """The filter with tags and text normalised; InvalidArgument for malformed values."""
    errors: list[FieldError] = []
    tags, tag_errors = normalise_tags(task_filter.tags, ("query", "tag"))
    errors.extend(tag_errors)
    for name in ("assignee_id", "owner_id"):
        value = getattr(task_filter, name)
        if value is not None and not is_object_id(value):
            errors.append(FieldError(("query", name), "must be a user id"))
    if len(task_filter.text) > MAX_QUERY_LENGTH:
        errors.append(FieldError(("query", "q"), f"at most {MAX_QUERY_LENGTH} characters"))
    if len(tags) > MAX_TAGS:
        errors.append(FieldError(("query", "tag"), f"at most {MAX_TAGS} tags"))
    if errors:
        raise InvalidArgument("invalid list query", errors)
    return TaskFilter(
        status=task_filter.status,
        priority=task_filter.priority,
        tags=tuple(tags),
        assignee_id=task_filter.assignee_id,
        owner_id=task_filter.owner_id,
        text=task_filter.text.lower(),
        due_before=task_filter.due_before,
        due_after=task_filter.due_after,
    )


def encode_cursor(sort: SortOrder, position: Position) -> str:
    """The opaque cursor naming `position` in a list sorted by `sort`."""
    key: str | int = (
        position.key.isoformat() if isinstance(position.key, datetime) else position.key
    )
    body = {"v": CURSOR_VERSION, "s": sort.value, "k": key, "i": position.task_id}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_MALFORMED = "is not a cursor of this list"


def decode_cursor(cursor: str, sort: SortOrder) -> Position:
    """The position a cursor names; InvalidArgument if it is malformed or of another sort."""
    malformed = invalid(("query", "cursor"), _MALFORMED)
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise malformed
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError):
        raise malformed from None
    if not isinstance(body, dict) or set(body) != {"v", "s", "k", "i"}:
        raise malformed
    task_id, key = body["i"], body["k"]
    if body["v"] != CURSOR_VERSION or body["s"] != sort.value:
        raise malformed
    if not isinstance(task_id, str) or not is_object_id(task_id):
        raise malformed
    if sort.key == "priority":
        valid_priority = isinstance(key, int) and not isinstance(key, bool)
        if not valid_priority or key not in {p.value for p in Priority}:
            raise malformed
        return Position(key, task_id)
    if not isinstance(key, str):
        raise malformed
    try:
        moment = datetime.fromisoformat(key)
    except ValueError:
        raise malformed from None
    if moment.tzinfo is None:
        raise malformed
    return Position(moment.astimezone(UTC), task_id)


def sort_key_of(task: Task, sort: SortOrder) -> SortKey:
    """The value a task has under a sort order's key, as stored."""
    if sort.key == "due_key":
        return task.fields.due_at or NO_DUE_DATE
    if sort.key == "priority":
        return int(task.fields.priority)
    value: datetime = getattr(task, sort.key)
    return value
