"""The email queue: one delivery record per email in the collection `emails`.

A record, by field:

- `_id`: the email's key, so an email is queued once per key however often its cause
  (an event, a reminder) is applied; `to`, `template`, `context`: what to send.
- `status`: `pending`, then `sent` or `failed`; `attempts`: attempts started so far.
- `next_attempt_at`: when a sender may take the record next; present **only while pending**,
  so the index on it alone serves the senders' query for due records.
- `lease_owner`, `lease_expires_at`: the sender instance sending it now, and until when; a
  claim also moves `next_attempt_at` to the lease's end, so no other instance takes the
  record before the lease expires.
- `created_at`, `sent_at` or `failed_at`, `last_error`.

The context is removed once the record is sent or failed (it may hold a password-reset
token), and TTL indexes delete sent and failed records `RETENTION_S` after that.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from taskmesh_chassis.events import call_after_commit
from taskmesh_chassis.mongo import Document, IndexPlan

from taskmesh_notifications.mail.errors import InvalidEmail
from taskmesh_notifications.mail.templates import EmailTemplate, check_context

EMAILS: Final = "emails"
RETENTION_S: Final = 30 * 24 * 3600
MAX_KEY_LENGTH: Final = 512

EMAIL_INDEXES: IndexPlan = {
    EMAILS: [
        # The due pending records, soonest first (the field exists only while pending).
        IndexModel([("next_attempt_at", ASCENDING)], name="next_attempt_at"),
        IndexModel([("sent_at", ASCENDING)], name="sent_at_ttl", expireAfterSeconds=RETENTION_S),
        IndexModel(
            [("failed_at", ASCENDING)], name="failed_at_ttl", expireAfterSeconds=RETENTION_S
        ),
        # forget_user: a deleted account's records, whatever their state.
        IndexModel([("user_id", ASCENDING)], name="user_id", sparse=True),
    ],
}

# One address, nothing around it: no display name, no list, no whitespace or control
# characters (which would let a value add headers).
_ADDRESS: Final = re.compile(
    r"[^\s\x00-\x1f\x7f@<>()\[\]\\,;:\"]+@[^\s\x00-\x1f\x7f@<>()\[\]\\,;:\"]+"
)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class DeliveryStatus(StrEnum):
    """Where a delivery record stands."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class EmailMessage:
    """An email to queue: sent once per `key`, built from `template` and `context`.

    Callers build the key from what caused the email, e.g. `f"{template}:{event_id}:{user_id}"`.
    `user_id` names the recipient's account, so its records go when the account is deleted.
    Raises InvalidEmail when constructed with an unusable key, address, template or context.
    """

    key: str
    to: str
    template: EmailTemplate
    context: Mapping[str, str]
    user_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not 0 < len(self.key) <= MAX_KEY_LENGTH:
            raise InvalidEmail(f"an email key is a string of 1 to {MAX_KEY_LENGTH} characters")
        if _CONTROL.search(self.key):
            raise InvalidEmail("an email key has no control characters")
        if not isinstance(self.to, str) or len(self.to) > 254 or not _ADDRESS.fullmatch(self.to):
            raise InvalidEmail("the recipient must be one email address")
        if not isinstance(self.template, EmailTemplate):
            raise InvalidEmail(f"unknown email template {self.template!r}")
        check_context(self.template, self.context)


@dataclass(frozen=True)
class Delivery:
    """A pending delivery record, as a sender reads it."""

    key: str
    to: str
    template: str
    context: Mapping[str, str]
    attempts: int
    next_attempt_at: datetime
    created_at: datetime


class EmailQueue:
    """The delivery records of one database, and who to wake when one is queued."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = database[EMAILS]
        self._listeners: list[Callable[[], None]] = []

    def indexes(self) -> IndexPlan:
        """The indexes the queue needs (the same as the module's EMAIL_INDEXES)."""
        return EMAIL_INDEXES

    async def enqueue(self, message: EmailMessage, session: AsyncClientSession) -> bool:
        """Queue `message` in the caller's session (and transaction, if one is open).

        Returns False, changing nothing, when an email with this key was queued before. The
        senders are woken once the event handler's transaction commits; outside an event
        handler they are woken at once, and a caller that commits a transaction of its own
        calls `wake_senders()` after the commit (else the next sweep finds the email).
        """
        now = datetime.now(UTC)
        # An upsert, not an insert: a duplicate-key error would abort the caller's transaction.
        result = await self.collection.update_one(
            {"_id": message.key},
            {
                "$setOnInsert": {
                    "to": message.to,
                    "template": str(message.template),
                    "context": dict(message.context),
                    "status": str(DeliveryStatus.PENDING),
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    **({} if message.user_id is None else {"user_id": message.user_id}),
                }
            },
            upsert=True,
            session=session,
        )
        if result.upserted_id is None:
            return False
        try:
            call_after_commit(self.wake_senders)
        except RuntimeError:
            # Not inside an event handler: there is no commit to wait for here.
            self.wake_senders()
        return True

    async def forget_user(self, user_id: str, session: AsyncClientSession) -> int:
        """Delete every record of the account `user_id` (pending ones are then never sent)."""
        result = await self.collection.delete_many({"user_id": user_id}, session=session)
        return result.deleted_count

    def on_enqueue(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` after each email queued here commits; return what unsubscribes it."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def wake_senders(self) -> None:
        """Tell this process's senders that there is something to send."""
        for listener in list(self._listeners):
            listener()

    def due_cursor(self, until: datetime, limit: int) -> AsyncCursor[Document]:
        """The pending records due by `until`, soonest first (served by `next_attempt_at`)."""
        return (
            self.collection.find({"next_attempt_at": {"$lte": until}})
            .sort("next_attempt_at", ASCENDING)
            .limit(limit)
        )

    async def due(self, until: datetime, limit: int) -> list[Delivery]:
        """Read up to `limit` pending records due by `until`, soonest first."""
        return [_delivery(document) async for document in self.due_cursor(until, limit)]

    async def claim(
        self, delivery: Delivery, *, owner: str, now: datetime, lease_until: datetime
    ) -> Delivery | None:
        """Take the record for one attempt, until `lease_until`; None if another took it first.

        The update is conditional on the record being as read (pending, due, same attempt
        count), so of several instances claiming one record exactly one succeeds.
        """
        result = await self.collection.update_one(
            {
                "_id": delivery.key,
                "status": str(DeliveryStatus.PENDING),
                "attempts": delivery.attempts,
                "next_attempt_at": {"$lte": now},
            },
            {
                "$set": {
                    "lease_owner": owner,
                    "lease_expires_at": lease_until,
                    "next_attempt_at": lease_until,
                },
                "$inc": {"attempts": 1},
            },
        )
        if result.modified_count != 1:
            return None
        return Delivery(
            key=delivery.key,
            to=delivery.to,
            template=delivery.template,
            context=delivery.context,
            attempts=delivery.attempts + 1,
            next_attempt_at=lease_until,
            created_at=delivery.created_at,
        )

    async def mark_sent(self, key: str, *, owner: str, sent_at: datetime) -> bool:
        """Record the email as sent and drop its context; False if `owner` lost the lease."""
        return await self._finish(
            key,
            owner,
            {"status": str(DeliveryStatus.SENT), "sent_at": sent_at},
            unset=("context", "last_error"),
        )

    async def mark_failed(self, key: str, *, owner: str, failed_at: datetime, error: str) -> bool:
        """Give the email up and drop its context; False if `owner` lost the lease."""
        return await self._finish(
            key,
            owner,
            {"status": str(DeliveryStatus.FAILED), "failed_at": failed_at, "last_error": error},
            unset=("context",),
        )

    async def reschedule(
        self, key: str, *, owner: str, next_attempt_at: datetime, error: str
    ) -> bool:
        """Release the record for an attempt at `next_attempt_at`; False if the lease was lost."""
        result = await self.collection.update_one(
            {"_id": key, "status": str(DeliveryStatus.PENDING), "lease_owner": owner},
            {
                "$set": {"next_attempt_at": next_attempt_at, "last_error": error},
                "$unset": {"lease_owner": "", "lease_expires_at": ""},
            },
        )
        return result.modified_count == 1

    async def _finish(
        self, key: str, owner: str, fields: Document, *, unset: tuple[str, ...]
    ) -> bool:
        removed = ("next_attempt_at", "lease_owner", "lease_expires_at", *unset)
        result = await self.collection.update_one(
            {"_id": key, "status": str(DeliveryStatus.PENDING), "lease_owner": owner},
            {"$set": fields, "$unset": dict.fromkeys(removed, "")},
        )
        return result.modified_count == 1


def _delivery(document: Mapping[str, Any]) -> Delivery:
    return Delivery(
        key=document["_id"],
        to=document["to"],
        template=document["template"],
        context=document.get("context", {}),
        attempts=document["attempts"],
        next_attempt_at=document["next_attempt_at"],
        created_at=document["created_at"],
    )
