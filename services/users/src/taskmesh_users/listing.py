"""What a user list asks for: filters, page size and the keyset cursor.

The list is in account-creation order: ascending `_id` (ObjectIds grow with their creation
time). A cursor is the id of the last profile of a page, `base64url(JSON)` of
`{"v": 1, "i": "<user id>"}` without padding, opaque to clients and validated when it comes
back. It names a position, not an offset, so a walk sees every profile that existed for the
whole walk exactly once while others are added or removed.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Final

from taskmesh_users.domain import Role, invalid, is_object_id

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
MAX_CURSOR_LENGTH: Final = 512
MAX_QUERY_LENGTH: Final = 200
CURSOR_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class ProfileFilter:
    """The list's filters; None / empty means not filtered on that."""

    text: str = ""
    """Case-insensitive substring of the name or the email."""
    role: Role | None = None
    active: bool | None = None


NO_FILTER: Final = ProfileFilter()


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One page of the user list: up to `limit` profiles after the user id `after`."""

    filter: ProfileFilter = NO_FILTER
    limit: int = DEFAULT_LIMIT
    after: str | None = None


def check_limit(limit: int) -> int:
    """The page size: 0 means the default; otherwise 1-100 (InvalidArgument outside)."""
    if limit == 0:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(("query", "limit"), f"must be 1-{MAX_LIMIT}")
    return limit


def check_filter(profile_filter: ProfileFilter) -> ProfileFilter:
    """The filter with its text lower-cased; InvalidArgument when the text is too long."""
    if len(profile_filter.text) > MAX_QUERY_LENGTH:
        raise invalid(("query", "q"), f"at most {MAX_QUERY_LENGTH} characters")
    return ProfileFilter(
        text=profile_filter.text.lower(), role=profile_filter.role, active=profile_filter.active
    )


def encode_cursor(user_id: str) -> str:
    """The opaque cursor of the position after the profile `user_id`."""
    raw = json.dumps({"v": CURSOR_VERSION, "i": user_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The user id a cursor names; InvalidArgument (`query.cursor`) if it is not one of ours."""
    malformed = invalid(("query", "cursor"), "is not a cursor of this list")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise malformed
    try:
        body = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise malformed from None
    if not isinstance(body, dict) or set(body) != {"v", "i"} or body["v"] != CURSOR_VERSION:
        raise malformed
    user_id = body["i"]
    if not isinstance(user_id, str) or not is_object_id(user_id):
        raise malformed
    return user_id


def check_query(profile_filter: ProfileFilter, limit: int, cursor: str) -> ListQuery:
    """A list query from the request's values, each checked (InvalidArgument otherwise)."""
    return ListQuery(
        filter=check_filter(profile_filter),
        limit=check_limit(limit),
        after=decode_cursor(cursor) if cursor else None,
    )
