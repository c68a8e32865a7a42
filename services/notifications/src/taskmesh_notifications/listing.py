"""What a notification list asks for: the filter, the page size and the keyset cursor.

The list is newest first: descending `created_at`, ties broken by descending `_id`. A cursor
names the last notification of a page by both, `base64url(JSON)` of
`{"v": 1, "c": "<created_at, RFC 3339 with milliseconds>", "i": "<notification id>"}`
without padding; opaque to clients and validated when it comes back. It names a position,
not an offset, so a walk sees every notification that existed for the whole walk exactly
once while others are added, read or deleted.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from taskmesh_chassis.errors import invalid as invalid

from taskmesh_notifications.domain import is_object_id, rfc3339

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
MAX_CURSOR_LENGTH: Final = 512
CURSOR_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ends: the last notification's creation time and id."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One page of a user's notifications: up to `limit` after `after`, newest first."""

    user_id: str
    unread_only: bool = False
    limit: int = DEFAULT_LIMIT
    after: Position | None = None


def check_limit(limit: int) -> int:
    """The page size: 0 means the default; otherwise 1-100 (InvalidArgument outside)."""
    if limit == 0:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(("query", "limit"), f"must be 1-{MAX_LIMIT}")
    return limit


def encode_cursor(position: Position) -> str:
    """The opaque cursor of the position after the notification at `position`."""
    body = {"v": CURSOR_VERSION, "c": rfc3339(position.created_at), "i": position.id}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; InvalidArgument (`query.cursor`) if it is not one of ours."""
    malformed = invalid(("query", "cursor"), "is not a cursor of this list")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise malformed
    try:
        body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise malformed from None
    if not isinstance(body, dict) or set(body) != {"v", "c", "i"} or body["v"] != CURSOR_VERSION:
        raise malformed
    created_at, notification_id = body["c"], body["i"]
    if not isinstance(notification_id, str) or not is_object_id(notification_id):
        raise malformed
    if not isinstance(created_at, str) or not created_at.endswith("Z"):
        raise malformed
    try:
        moment = datetime.fromisoformat(created_at)
    except ValueError:
        raise malformed from None
    return Position(created_at=moment.astimezone(UTC), id=notification_id)


def check_query(user_id: str, *, unread_only: bool, limit: int, cursor: str) -> ListQuery:
    """A list query from the request's values, each checked (InvalidArgument otherwise)."""
    return ListQuery(
        user_id=user_id,
        unread_only=unread_only,
        limit=check_limit(limit),
        after=decode_cursor(cursor) if cursor else None,
    )
