"""The notifications service's use cases: a caller's own notifications, listed and marked read.

Every use case starts from the caller's own user id, so no request can reach another
user's notification: one that is not the caller's is not found, whatever its id.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from taskmesh_notifications.domain import Notification, NotificationNotFound, Viewer
from taskmesh_notifications.listing import Position, check_query, encode_cursor
from taskmesh_notifications.repository import MongoNotificationStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class NotificationPage:
    """One page of a user's notifications and the cursor of the next (None on the last page)."""

    notifications: list[Notification]
    next_cursor: str | None


class NotificationsService:
    """The use cases over the notification store."""

    def __init__(self, store: MongoNotificationStore) -> None:
        self._store = store

    async def list_notifications(
        self, viewer: Viewer, *, unread_only: bool, limit: int, cursor: str
    ) -> NotificationPage:
        """A page of the viewer's notifications, newest first; InvalidArgument for bad paging."""
        query = check_query(viewer.user_id, unread_only=unread_only, limit=limit, cursor=cursor)
        found = await self._store.list_page(query)
        page = found[: query.limit]
        next_cursor = None
        if len(found) > query.limit:
            last = page[-1]
            next_cursor = encode_cursor(Position(created_at=last.created_at, id=last.id))
        return NotificationPage(page, next_cursor)

    async def mark_read(self, viewer: Viewer, notification_id: str) -> None:
        """Mark one of the viewer's notifications read; NotificationNotFound if it is not theirs."""
        if not await self._store.mark_read(viewer.user_id, notification_id):
            raise NotificationNotFound()

    async def mark_all_read(self, viewer: Viewer) -> int:
        """Mark every unread notification of the viewer read; return how many were unread."""
        changed = await self._store.mark_all_read(viewer.user_id)
        log.info("notifications.all_marked_read", user_id=viewer.user_id, count=changed)
        return changed
