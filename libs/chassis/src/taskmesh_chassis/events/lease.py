"""Which instance of a service relays its outbox: a lease renewed in MongoDB.

Every instance runs a relay, but only the lease holder publishes; the others stand by and
take over once the holder stops renewing (it crashed) or releases the lease (it stopped).
Two holders at once — a paused holder resuming after expiry — only duplicate events, which
consumers drop by id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from taskmesh_chassis.mongo import Document

LEASE_COLLECTION: Final = "outbox_lease"
_LEASE_ID: Final = "relay"


class RelayLease:
    """The relay lease of one service database, as seen by one instance."""

    def __init__(
        self, database: AsyncDatabase[Document], *, ttl_s: float, holder: str | None = None
    ) -> None:
        self.holder = holder or uuid.uuid4().hex
        self.ttl_s = ttl_s
        self._collection: AsyncCollection[Document] = database[LEASE_COLLECTION]

    async def acquire(self) -> bool:
        """Take or renew the lease; tell whether this instance holds it now."""
        now = datetime.now(UTC)
        expires_at = now + timedelta(seconds=self.ttl_s)
        renewed = await self._collection.update_one(
            {"_id": _LEASE_ID, "$or": [{"holder": self.holder}, {"expires_at": {"$lte": now}}]},
            {"$set": {"holder": self.holder, "expires_at": expires_at}},
        )
        if renewed.matched_count:
            return True
        try:
            await self._collection.insert_one(
                {"_id": _LEASE_ID, "holder": self.holder, "expires_at": expires_at}
            )
        except DuplicateKeyError:
            return False
        return True

    async def release(self) -> None:
        """Give the lease up, if this instance holds it, so another takes over at once."""
        await self._collection.delete_one({"_id": _LEASE_ID, "holder": self.holder})
