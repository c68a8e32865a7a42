"""The events the notifications service consumes, and what each one does here.

Each handler runs in the consumer's transaction (docs/events.md) and writes only through
its session, so an event applied twice changes nothing more.
"""

from __future__ import annotations

from typing import Final

import structlog
from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.events import Event, Handler, UnprocessableEvent

from taskmesh_notifications.repository import MongoNotificationStore

log = structlog.get_logger(__name__)

USER_DELETED: Final = "user.deleted"


def is_user_id(value: str) -> bool:
    """Whether `value` is a user id: 24 hex digits (no other ObjectId input form)."""
    return len(value) == 24 and ObjectId.is_valid(value)


class NotificationEvents:
    """The handlers of the events this service consumes, over its store."""

    def __init__(self, store: MongoNotificationStore) -> None:
        self._store = store

    def handlers(self) -> dict[str, Handler]:
        """The handler of each event type, for the consumer."""
        return {USER_DELETED: self.delete_notifications_of_user}

    async def delete_notifications_of_user(self, event: Event, session: AsyncClientSession) -> None:
        """`user.deleted`: the account is gone, and with it every notification it received."""
        payload = event.payload
        if not isinstance(payload, events_pb2.UserDeleted) or not is_user_id(payload.user_id):
            raise UnprocessableEvent("user.deleted does not carry a valid user id")
        deleted = await self._store.delete_all_of(payload.user_id, session)
        log.info("notifications.user_notifications_deleted", user_id=payload.user_id, count=deleted)
