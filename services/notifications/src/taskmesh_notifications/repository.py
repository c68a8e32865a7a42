"""MongoDB access of the notifications service: the in-app notifications of each user.

A notification is stored in `notifications` with its recipient in `user_id`. The index
`{user_id: 1, created_at: -1}` serves a user's list, newest first, and the deletion of all of
a user's notifications.
"""

from __future__ import annotations

from typing import Final

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from taskmesh_chassis.mongo import Document, IndexPlan

NOTIFICATIONS: Final = "notifications"

INDEXES: IndexPlan = {
    # A user's notifications, newest first (also creates the collection, which a
    # transaction could not do on SecantusDB).
    NOTIFICATIONS: [
        IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_id_created_at")
    ],
}


class MongoNotificationStore:
    """The notifications in MongoDB."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._notifications: AsyncCollection[Document] = database[NOTIFICATIONS]

    async def delete_all_of(self, user_id: str, session: AsyncClientSession) -> int:
        """Delete every notification of the user in the caller's transaction; return how many."""
        result = await self._notifications.delete_many(
            {"user_id": {"$eq": user_id}}, session=session
        )
        return result.deleted_count
