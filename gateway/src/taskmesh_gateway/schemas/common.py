"""Types shared by the resource schemas: timestamps, pages, request-body bases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Self, TypeVar

from fastapi import Path, Query
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema, model_validator
from taskmesh.common.v1 import common_pb2

DEFAULT_PAGE_LIMIT = 20
MAX_PAGE_LIMIT = 100


def format_timestamp(value: datetime) -> str:
    """Render an instant as RFC 3339 in UTC with millisecond precision and a `Z` suffix."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[
    datetime,
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "example": "2026-11-28T09:42:14.123Z"}
    ),
]
"""An instant in a response body, serialized like `2026-11-28T09:42:14.123Z`."""


def datetime_from_proto(timestamp: Timestamp) -> datetime:
    """Convert a protobuf Timestamp to an aware UTC datetime."""
    return timestamp.ToDatetime(tzinfo=UTC)


def optional_datetime_from_proto(message: Any, field: str) -> datetime | None:
    """Convert a Timestamp field of `message`, or None when the field is unset."""
    if not message.HasField(field):
        return None
    return datetime_from_proto(getattr(message, field))


def timestamp_to_proto(value: datetime) -> Timestamp:
    """Convert an aware datetime to a protobuf Timestamp."""
    timestamp = Timestamp()
    timestamp.FromDatetime(value.astimezone(UTC))
    return timestamp


class RequestBody(BaseModel):
    """Base of every JSON request body: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")


class PartialUpdate(RequestBody):
    """Base of PATCH bodies: omitted fields stay unchanged; `null` only where a field allows it."""

    nullable_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _reject_nulls(self) -> Self:
        for name in self.model_fields_set - self.nullable_fields:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may be omitted but not null")
        return self


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a cursor-paginated list."""

    items: list[ItemT]
    next_cursor: str | None


Limit = Annotated[
    int,
    Query(ge=1, le=MAX_PAGE_LIMIT, description="Items per page (1-100)"),
]
Cursor = Annotated[
    str | None,
    Query(max_length=1024, description="`next_cursor` of the previous page"),
]


def page_request(limit: int, cursor: str | None) -> common_pb2.PageRequest:
    """Build the proto page request from the `limit` and `cursor` query parameters."""
    return common_pb2.PageRequest(limit=limit, cursor=cursor or "")


def next_cursor_from_proto(page: common_pb2.PageInfo) -> str | None:
    """The HTTP `next_cursor`: null on the last page."""
    return page.next_cursor or None


ResourceId = Annotated[str, Path(min_length=1, max_length=64, description="An opaque id")]
"""A path segment naming a resource; the name in the route template is the alias (`{id}`)."""
