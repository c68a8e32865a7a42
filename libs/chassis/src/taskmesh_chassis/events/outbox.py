"""The transactional outbox: a state change and its events are committed together.

    async with outbox.transaction() as uow:
        await tasks.insert_one(document, session=uow.session)
        uow.add_event("task.created", subject=task_id, payload=TaskCreated(...))

On leaving the block the events are inserted into the `outbox` collection in the same
MongoDB transaction, which then commits; the relay (relay.py) publishes them afterwards.
An event is pending while its record has `pending_seq`: a sparse index on that field holds
exactly the backlog, in publishing order. Publishing replaces it by `sent_at`, from which a
TTL index expires the record.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, TypeVar

import pymongo
import structlog
from bson import Binary
from google.protobuf.message import Message
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from taskmesh_chassis.events.envelope import Event, encode_event, new_event
from taskmesh_chassis.mongo import Document, IndexPlan, ensure_indexes

log = structlog.get_logger(__name__)

OUTBOX_COLLECTION: Final = "outbox"
PENDING_FILTER: Final[Document] = {"pending_seq": {"$exists": True}}
PENDING_SORT: Final = [("pending_seq", ASCENDING)]
DEFAULT_SENT_TTL_S: Final = 7 * 24 * 3600.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One pending event as the relay reads it: the encoded envelope and what routes it.

    Its trace context is the envelope's, copied so that the relay need not decode the body.
    """

    id: str
    seq: int
    type: str
    subject: str
    body: bytes
    created_at: datetime
    traceparent: str = ""
    tracestate: str = ""

    @classmethod
    def from_document(cls, document: Document) -> OutboxRecord:
        """Read a record from its `outbox` document."""
        return cls(
            id=document["_id"],
            seq=document["pending_seq"],
            type=document["type"],
            subject=document["subject"],
            body=bytes(document["body"]),
            created_at=document["created_at"],
            traceparent=document.get("traceparent", ""),
            tracestate=document.get("tracestate", ""),
        )


class SequenceClock:
    """Strictly increasing integers that follow wall-clock microseconds.

    A record's place in the backlog. It is drawn when the transaction is about to commit,
    after all its writes: two transactions changing the same aggregate conflict, so the one
    committing later also draws later and its events are published after the other's.
    """

    def __init__(self, now_us: Callable[[], int] = lambda: time.time_ns() // 1000) -> None:
        self._now_us = now_us
        self._last = 0

    def next(self) -> int:
        """Return the next number, never equal to or below the previous one."""
        self._last = max(self._last + 1, self._now_us())
        return self._last


@dataclass
class UnitOfWork:
    """One MongoDB transaction and the events it will commit along with its writes."""

    session: AsyncClientSession
    source: str
    events: list[Event] = field(default_factory=list)

    def add_event(
        self, event_type: str, *, subject: str, payload: Message, schema_version: int = 1
    ) -> Event:
        """Record an event to be committed with this transaction; return it."""
        event = new_event(
            event_type,
            source=self.source,
            subject=subject,
            payload=payload,
            schema_version=schema_version,
        )
        self.events.append(event)
        return event


class Outbox:
    """A service's outbox collection: transactions that emit events, and the pending backlog."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        *,
        source: str,
        sent_ttl_s: float = DEFAULT_SENT_TTL_S,
        clock: SequenceClock | None = None,
    ) -> None:
        self.database = database
        self.source = source
        self.collection: AsyncCollection[Document] = database[OUTBOX_COLLECTION]
        self._sent_ttl_s = sent_ttl_s
        self._clock = clock or SequenceClock()
        self._commit_listeners: list[Callable[[], None]] = []

    def indexes(self) -> IndexPlan:
        """The indexes the outbox needs: the pending backlog in order, and expiry of sent ones."""
        return {
            OUTBOX_COLLECTION: [
                IndexModel(PENDING_SORT, name="pending_seq", sparse=True),
                IndexModel(
                    [("sent_at", ASCENDING)],
                    name="sent_at_ttl",
                    expireAfterSeconds=int(self._sent_ttl_s),
                ),
            ]
        }

    async def ensure_indexes(self) -> None:
        """Create the outbox indexes if they are missing."""
        await ensure_indexes(self.database, self.indexes())

    def on_commit(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after every commit that added events; return its unsubscriber."""
        self._commit_listeners.append(listener)
        return lambda: self._commit_listeners.remove(listener)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        """Run the block in one transaction that also inserts the events it adds.

        Leaving the block normally commits; an exception aborts and propagates. A transient
        error (a write conflict) propagates too; `run_in_transaction` retries those.
        """
        async with self.database.client.start_session() as session:
            uow = UnitOfWork(session, self.source)
            async with await session.start_transaction():
                yield uow
                if uow.events:
                    await self.collection.insert_many(
                        [self._document(event) for event in uow.events], session=session
                    )
        if uow.events:
            log.debug("outbox.committed", event_ids=[event.id for event in uow.events])
            for listener in self._commit_listeners:
                listener()

    async def run_in_transaction(
        self, work: Callable[[UnitOfWork], Awaitable[T]], *, max_attempts: int = 5
    ) -> T:
        """Run `work` in `transaction()`, again from the start after a transient error."""
        attempt = 1
        while True:
            try:
                async with self.transaction() as uow:
                    return await work(uow)
            except PyMongoError as error:
                transient = error.has_error_label("TransientTransactionError")
                if not transient or attempt >= max_attempts:
                    raise
                log.info("outbox.transaction_retried", attempt=attempt, error=str(error))
            attempt += 1

    async def add_event(
        self,
        session: AsyncClientSession,
        event_type: str,
        *,
        subject: str,
        payload: Message,
        schema_version: int = 1,
    ) -> Event:
        """Insert an event within `session`'s transaction; for consumers' handlers.

        A handler gets the session of the transaction that records its effect; an event it
        emits this way commits with that effect. The relay learns of it from the change
        stream or its next sweep.
        """
        event = new_event(
            event_type,
            source=self.source,
            subject=subject,
            payload=payload,
            schema_version=schema_version,
        )
        await self.collection.insert_one(self._document(event), session=session)
        return event

    def _document(self, event: Event) -> Document:
        return {
            "_id": event.id,
            "pending_seq": self._clock.next(),
            "type": event.type,
            "subject": event.subject,
            "body": Binary(encode_event(event)),
            "created_at": event.time,
            "traceparent": event.traceparent,
            "tracestate": event.tracestate,
        }

    async def pending_batches(
        self, batch_size: int, *, read_timeout_s: float = 60.0
    ) -> AsyncGenerator[list[OutboxRecord], None]:
        """Yield the pending records in publishing order, `batch_size` at a time.

        One cursor reads the whole backlog: re-querying it per batch would cost the size of
        the backlog each time on servers that do not stop an index scan at the limit.
        """
        cursor = self.collection.find(PENDING_FILTER).sort(PENDING_SORT).batch_size(batch_size)
        async with cursor:
            while True:
                with pymongo.timeout(read_timeout_s):
                    documents = await cursor.to_list(batch_size)
                if not documents:
                    return
                yield [OutboxRecord.from_document(document) for document in documents]

    async def mark_sent(self, event_ids: Sequence[str]) -> None:
        """Record that the broker confirmed these events; they leave the backlog."""
        if not event_ids:
            return
        now = datetime.now(UTC)
        # One update by _id each: an `$in` over _id is not served by the index everywhere.
        updates = [
            UpdateOne({"_id": event_id}, {"$unset": {"pending_seq": ""}, "$set": {"sent_at": now}})
            for event_id in event_ids
        ]
        await self.collection.bulk_write(updates, ordered=False)

    async def count_pending(self) -> int:
        """Count the events not yet confirmed by the broker."""
        return await self.collection.count_documents(PENDING_FILTER)
