"""The events analytics consumes, each turned into increments of its rollups.

Each handler runs in the consumer's transaction (docs/events.md) and writes only through its
session, so an event is counted exactly once: a redelivery finds its id in
`processed_events`. A `gateway.request_records` batch is one event, hence counted whole or
not at all. The queue is bound with these exact types:

- `gateway.request_records`: the batch's tally (requests, 5xx, latency per route; users seen).
- `task.created`, `task.completed`, `task.deleted`, `user.registered`: one count each, in the
  buckets of the event's time.
- `user.deleted`: one count, and what is kept about the user (`last_seen`) is deleted;
  the counts they contributed to stay, being anonymous.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, TypeVar

import structlog
from google.protobuf.message import Message
from pymongo.asynchronous.client_session import AsyncClientSession
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.events import Event, Handler, UnprocessableEvent

from taskmesh_analytics.domain import EARLIEST, LATEST, Activity, Clock, utc_now
from taskmesh_analytics.records import InvalidRecord, RequestRecord, tally
from taskmesh_analytics.repository import RollupWriter

log = structlog.get_logger(__name__)

REQUEST_RECORDS: Final = "gateway.request_records"
TASK_CREATED: Final = "task.created"
TASK_COMPLETED: Final = "task.completed"
TASK_DELETED: Final = "task.deleted"
USER_REGISTERED: Final = "user.registered"
USER_DELETED: Final = "user.deleted"

_COUNTED: Final = {
    TASK_CREATED: (events_pb2.TaskCreated, Activity.TASKS_CREATED),
    TASK_COMPLETED: (events_pb2.TaskCompleted, Activity.TASKS_COMPLETED),
    TASK_DELETED: (events_pb2.TaskDeleted, Activity.TASKS_DELETED),
    USER_REGISTERED: (events_pb2.UserRegistered, Activity.USERS_REGISTERED),
}

PayloadT = TypeVar("PayloadT", bound=Message)


def payload_of(event: Event, payload_type: type[PayloadT]) -> PayloadT:
    """The event's payload, which must be a `payload_type` (UnprocessableEvent otherwise)."""
    if not isinstance(event.payload, payload_type):
        raise UnprocessableEvent(f"{event.type} carries {event.data_schema}")
    return event.payload


def event_time(event: Event) -> datetime:
    """When the event's change happened, which must be between 1970 and 3000."""
    if not EARLIEST <= event.time < LATEST:
        raise UnprocessableEvent(f"{event.type} at an implausible time")
    return event.time


def record_from(record: events_pb2.RequestRecord) -> RequestRecord:
    """The domain form of one record of a batch (not yet checked)."""
    if not record.HasField("time"):
        raise UnprocessableEvent("a request record without time")
    return RequestRecord(
        route=record.route,
        method=record.method,
        status=record.status,
        duration_ms=record.duration_ms,
        time=record.time.ToDatetime(tzinfo=UTC),
        user_id=record.user_id,
    )


class AnalyticsEvents:
    """The handlers of every event analytics counts, over the rollups they increment."""

    def __init__(self, writer: RollupWriter, clock: Clock = utc_now) -> None:
        self._writer = writer
        self._clock = clock

    def handlers(self) -> dict[str, Handler]:
        """The handler of each event type consumed, by its exact routing key."""
        handlers: dict[str, Handler] = {event_type: self.counted for event_type in _COUNTED}
        handlers[REQUEST_RECORDS] = self.request_records
        handlers[USER_DELETED] = self.user_deleted
        return handlers

    async def request_records(self, event: Event, session: AsyncClientSession) -> None:
        """Add a gateway's batch of request records to the rollups, in one write per bucket."""
        batch = payload_of(event, events_pb2.RequestRecordBatch)
        try:
            batch_tally = tally(record_from(record) for record in batch.records)
        except InvalidRecord as error:
            raise UnprocessableEvent(f"invalid request record: {error}") from None
        await self._writer.add_requests(batch_tally, self._clock(), session)
        log.info(
            "analytics.requests_counted",
            records=len(batch.records),
            route_buckets=len(batch_tally.routes),
            users=len(batch_tally.last_seen),
        )

    async def counted(self, event: Event, session: AsyncClientSession) -> None:
        """Count a domain event in the buckets of its time."""
        payload_type, activity = _COUNTED[event.type]
        payload_of(event, payload_type)
        await self._writer.count(activity, event_time(event), session)

    async def user_deleted(self, event: Event, session: AsyncClientSession) -> None:
        """Count the deletion and forget the user; their anonymous counts stay."""
        user_id = payload_of(event, events_pb2.UserDeleted).user_id
        if not user_id:
            raise UnprocessableEvent("user.deleted without user_id")
        await self._writer.count(Activity.USERS_DELETED, event_time(event), session)
        await self._writer.forget_user(user_id, self._clock(), session)
        log.info("analytics.user_forgotten", user_id=user_id)
