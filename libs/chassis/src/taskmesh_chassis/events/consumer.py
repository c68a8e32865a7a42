"""The consumer: applies events to a service's database exactly once, in order per subject.

Each handler runs inside a MongoDB transaction that first records the event id in
`processed_events` (its `_id`, hence unique); a redelivered event finds its id there and is
acknowledged without running the handler again. The message is acknowledged only after the
transaction committed. A failing handler's message goes to a retry queue and comes back
after the policy's delay; after the last attempt, or at once when the message can never
succeed (malformed, of an unknown type, or refused by the handler with UnprocessableEvent),
it goes to the service's dead-letter queue. Every path ends in an ack, so nothing blocks
the queue.

Each delivery is handled in a consumer span continuing the trace of the relay's publish
(`traceparent` in the message headers), or else the envelope's; so a request's trace goes on
into the effects of the events it caused, and the handler's log lines carry its trace id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from taskmesh_chassis.context import RequestContext, bind_request, new_request_id
from taskmesh_chassis.events import metrics
from taskmesh_chassis.events.broker import BROKER_ERRORS
from taskmesh_chassis.events.delivery import (
    DeadLetterReason,
    dead_letter_headers,
    failed_attempts,
    retry_headers,
)
from taskmesh_chassis.events.envelope import Event, MalformedEvent, decode_event
from taskmesh_chassis.events.retry import GiveUp, RetryPolicy, delay_ms
from taskmesh_chassis.events.topology import (
    DEFAULT_DELIVERY_LIMIT,
    EventTopology,
    declare_service_queues,
    is_binding_key,
    topic_matches,
)
from taskmesh_chassis.mongo import Document, IndexPlan, ensure_indexes
from taskmesh_chassis.tracing import (
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    context_from_headers,
    current_traceparent,
    get_tracer,
)

log = structlog.get_logger(__name__)
_tracer = get_tracer(__name__)

PROCESSED_EVENTS_COLLECTION: Final = "processed_events"
DEFAULT_PROCESSED_TTL_S: Final = 30 * 24 * 3600.0
_TRANSACTION_ATTEMPTS: Final = 3

Handler = Callable[[Event, AsyncClientSession], Awaitable[None]]


_after_commit: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "taskmesh_event_after_commit", default=None
)


def call_after_commit(callback: Callable[[], None]) -> None:
    """From inside a handler: run `callback` once the handler's transaction has committed.

    For in-process signals about what the handler stored (wake a worker that reads it); the
    callback is not called when the transaction aborts, and must not raise or block.
    """
    pending = _after_commit.get()
    if pending is None:
        raise RuntimeError("call_after_commit is only for event handlers, while they run")
    pending.append(callback)


def publisher_context(headers: Mapping[str, Any] | None, event: Event) -> Context:
    """The trace context to handle a delivery in: its publisher's, else its envelope's.

    The relay puts its producer span's `traceparent` in the message headers; a message that
    came another way (a replayed dead letter keeps its headers, a raw publish has none)
    falls back on the envelope's, the span that recorded the event.
    """
    received = {
        key: value.decode() if isinstance(value, bytes) else value
        for key, value in (headers or {}).items()
        if key in (TRACEPARENT_HEADER, TRACESTATE_HEADER) and isinstance(value, (str, bytes))
    }
    from_headers = context_from_headers(received)
    if trace.get_current_span(from_headers).get_span_context().is_valid:
        return from_headers
    return context_from_headers(
        {TRACEPARENT_HEADER: event.traceparent, TRACESTATE_HEADER: event.tracestate}
    )


class UnprocessableEvent(Exception):
    """Raised by a handler for an event no retry can apply; it is dead-lettered at once."""


class _AlreadyProcessed(Exception):
    pass


class HandlerTable:
    """The handlers of a service by binding key: an event type or a topic pattern (`task.*`)."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        if not handlers:
            raise ValueError("a consumer needs at least one handler")
        invalid = [key for key in handlers if not is_binding_key(key)]
        if invalid:
            raise ValueError(f"invalid binding keys: {', '.join(invalid)}")
        self._handlers = dict(handlers)

    @property
    def binding_keys(self) -> list[str]:
        """The keys the service queue is bound with."""
        return list(self._handlers)

    def handler_for(self, event_type: str) -> Handler | None:
        """The handler of an exact key, else of the first pattern matching, else None."""
        exact = self._handlers.get(event_type)
        if exact is not None:
            return exact
        for key, handler in self._handlers.items():
            if topic_matches(key, event_type):
                return handler
        return None


@dataclass(frozen=True, slots=True)
class Accepted:
    """A delivery to handle: its event and the handler for it."""

    event: Event
    handler: Handler


@dataclass(frozen=True, slots=True)
class Rejected:
    """A delivery to dead-letter at once, and why."""

    reason: DeadLetterReason
    detail: str
    event: Event | None = None


def classify(body: bytes, handlers: HandlerTable) -> Accepted | Rejected:
    """Decide whether a message body is an event this service handles."""
    try:
        event = decode_event(body)
    except MalformedEvent as error:
        return Rejected(DeadLetterReason.MALFORMED, str(error))
    handler = handlers.handler_for(event.type)
    if handler is None:
        return Rejected(DeadLetterReason.UNKNOWN_TYPE, f"no handler for {event.type}", event)
    return Accepted(event, handler)


class EventConsumer:
    """Consumes one service's queue with its handlers, for as long as it runs."""

    def __init__(
        self,
        *,
        service: str,
        database: AsyncDatabase[Document],
        broker: AbstractRobustConnection,
        handlers: Mapping[str, Handler],
        topology: EventTopology | None = None,
        retry_policy: RetryPolicy | None = None,
        prefetch: int = 32,
        delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
        processed_ttl_s: float = DEFAULT_PROCESSED_TTL_S,
        publish_timeout_s: float = 10.0,
        drain_timeout_s: float = 10.0,
    ) -> None:
        self.service = service
        self._database = database
        self._broker = broker
        self._handlers = HandlerTable(handlers)
        self._topology = topology or EventTopology()
        self._queues = self._topology.queues_of(service)
        self._retry_policy = retry_policy or RetryPolicy()
        self._prefetch = prefetch
        self._delivery_limit = delivery_limit
        self._processed_ttl_s = processed_ttl_s
        self._publish_timeout_s = publish_timeout_s
        self._drain_timeout_s = drain_timeout_s
        self._processed: AsyncCollection[Document] = database[PROCESSED_EVENTS_COLLECTION]
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._last_of_subject: dict[str, asyncio.Task[None]] = {}

    def indexes(self) -> IndexPlan:
        """The indexes the consumer needs: processed event ids expire after the TTL."""
        ttl_index = IndexModel(
            [("processed_at", ASCENDING)],
            name="processed_at_ttl",
            expireAfterSeconds=int(self._processed_ttl_s),
        )
        return {PROCESSED_EVENTS_COLLECTION: [ttl_index]}

    async def start(self) -> None:
        """Ensure indexes, declare the service's queues and bindings, start consuming."""
        self._stopping = False
        await ensure_indexes(self._database, self.indexes())
        channel = await self._broker.channel(publisher_confirms=True, on_return_raises=True)
        self._channel = channel
        await channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await declare_service_queues(
            channel,
            self._topology,
            self.service,
            self._handlers.binding_keys,
            self._retry_policy,
            delivery_limit=self._delivery_limit,
        )
        self._consumer_tag = await self._queue.consume(self._on_message)
        log.info(
            "events.consumer_started",
            consumer=self.service,
            queue=self._queues.main,
            binding_keys=self._handlers.binding_keys,
        )

    async def stop(self) -> None:
        """Stop taking deliveries, let in-flight ones finish (up to the drain timeout), close."""
        self._stopping = True
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await self._queue.cancel(self._consumer_tag)
        abandoned = 0
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=self._drain_timeout_s)
            abandoned = len(pending)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._channel is not None:
            # Unacknowledged deliveries, if any were abandoned, return to the queue.
            with contextlib.suppress(*BROKER_ERRORS):
                await self._channel.close()
        log.info("events.consumer_stopped", consumer=self.service, abandoned=abandoned)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._stopping:
            return
        decision = classify(message.body, self._handlers)
        if isinstance(decision, Rejected):
            dead_letter = self._dead_letter(
                message,
                decision.reason,
                decision.detail,
                decision.event,
                attempts=failed_attempts(message.headers) + 1,
            )
            self._track(asyncio.create_task(dead_letter))
            return
        subject = decision.event.subject
        previous = self._last_of_subject.get(subject)
        task = asyncio.create_task(self._handle_after(previous, message, decision))
        self._last_of_subject[subject] = task
        task.add_done_callback(partial(self._forget_subject, subject))
        self._track(task)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _forget_subject(self, subject: str, task: asyncio.Task[None]) -> None:
        if self._last_of_subject.get(subject) is task:
            del self._last_of_subject[subject]

    async def _handle_after(
        self,
        previous: asyncio.Task[None] | None,
        message: AbstractIncomingMessage,
        accepted: Accepted,
    ) -> None:
        # Events of one subject are handled in the order they arrived, one at a time.
        if previous is not None:
            await asyncio.wait([previous])
        await self._handle(message, accepted)

    async def _handle(self, message: AbstractIncomingMessage, accepted: Accepted) -> None:
        event = accepted.event
        attempt = failed_attempts(message.headers) + 1
        with _tracer.start_as_current_span(
            f"process {event.type}",
            context=publisher_context(message.headers, event),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": self._queues.main,
                "messaging.consumer.group.name": self.service,
                "messaging.rabbitmq.destination.routing_key": event.type,
                "messaging.message.id": event.id,
                "taskmesh.event.attempt": attempt,
            },
        ):
            # The handler's log lines (and events it publishes) carry the causing request's ids.
            bind_request(
                RequestContext(
                    request_id=event.request_id or new_request_id(),
                    traceparent=current_traceparent(),
                )
            )
            await self._handle_in_span(message, event, accepted.handler, attempt)

    async def _handle_in_span(
        self, message: AbstractIncomingMessage, event: Event, handler: Handler, attempt: int
    ) -> None:
        fields = event.log_fields()
        metrics.CONSUMER_LAG_SECONDS.labels(self.service).observe(
            max(0.0, (datetime.now(UTC) - event.time).total_seconds())
        )
        started = time.perf_counter()
        try:
            duplicate = await self._apply(event, handler)
        except UnprocessableEvent as error:
            await self._dead_letter(
                message, DeadLetterReason.UNPROCESSABLE, str(error), event, attempts=attempt
            )
            return
        except Exception as error:
            await self._after_failure(message, event, attempt, error)
            return
        elapsed = time.perf_counter() - started
        metrics.HANDLER_SECONDS.labels(self.service, event.type).observe(elapsed)
        if duplicate:
            metrics.EVENTS_CONSUMED.labels(self.service, event.type, "duplicate").inc()
            log.info("event.duplicate", consumer=self.service, attempt=attempt, **fields)
        else:
            metrics.EVENTS_CONSUMED.labels(self.service, event.type, "processed").inc()
            log.info(
                "event.processed",
                consumer=self.service,
                attempt=attempt,
                duration_ms=round(elapsed * 1000, 2),
                **fields,
            )
        await self._ack(message, fields)

    async def _apply(self, event: Event, handler: Handler) -> bool:
        """Run the handler and record the event in one transaction; tell if it was a duplicate."""
        client = self._database.client
        attempt = 1
        while True:
            after_commit: list[Callable[[], None]] = []
            token = _after_commit.set(after_commit)
            try:
                async with (
                    client.start_session() as session,
                    await session.start_transaction(),
                ):
                    try:
                        await self._processed.insert_one(
                            {
                                "_id": event.id,
                                "type": event.type,
                                "subject": event.subject,
                                "processed_at": datetime.now(UTC),
                            },
                            session=session,
                        )
                    except DuplicateKeyError:
                        raise _AlreadyProcessed from None
                    await handler(event, session)
                for callback in after_commit:
                    callback()
                return False
            except _AlreadyProcessed:
                return True
            except PyMongoError as error:
                transient = error.has_error_label("TransientTransactionError")
                if not transient or attempt >= _TRANSACTION_ATTEMPTS:
                    raise
                log.info("event.transaction_retried", attempt=attempt, **event.log_fields())
            finally:
                _after_commit.reset(token)
            attempt += 1

    async def _after_failure(
        self, message: AbstractIncomingMessage, event: Event, attempt: int, error: Exception
    ) -> None:
        decision = self._retry_policy.after_failure(attempt)
        detail = f"{type(error).__name__}: {error}"
        trace.get_current_span().set_status(Status(StatusCode.ERROR, detail))
        if isinstance(decision, GiveUp):
            await self._dead_letter(
                message, DeadLetterReason.RETRIES_EXHAUSTED, detail, event, attempts=attempt
            )
            return
        fields = event.log_fields()
        retry_queue = self._queues.retry(delay_ms(decision.delay_s))
        headers = retry_headers(message.headers, failed=attempt)
        if not await self._send_copy(message, retry_queue, headers, fields):
            return
        metrics.EVENT_RETRIES.labels(self.service, event.type).inc()
        metrics.EVENTS_CONSUMED.labels(self.service, event.type, "retried").inc()
        log.warning(
            "event.retry_scheduled",
            consumer=self.service,
            attempt=attempt,
            retry_in_s=decision.delay_s,
            error=detail,
            **fields,
        )
        await self._ack(message, fields)

    async def _dead_letter(
        self,
        message: AbstractIncomingMessage,
        reason: DeadLetterReason,
        detail: str,
        event: Event | None,
        *,
        attempts: int,
    ) -> None:
        fields = event.log_fields() if event else {"message_id": message.message_id or "?"}
        trace.get_current_span().set_status(Status(StatusCode.ERROR, f"{reason.value}: {detail}"))
        headers = dead_letter_headers(
            message.headers, reason=reason, error=detail, attempts=attempts, now=datetime.now(UTC)
        )
        if not await self._send_copy(message, self._queues.dead_letter, headers, fields):
            return
        metrics.DEAD_LETTERS.labels(self.service, reason.value).inc()
        if event is not None:
            metrics.EVENTS_CONSUMED.labels(self.service, event.type, "dead_lettered").inc()
        log.warning(
            "event.dead_lettered",
            consumer=self.service,
            reason=reason.value,
            error=detail,
            attempts=attempts,
            **fields,
        )
        await self._ack(message, fields)

    async def _send_copy(
        self,
        message: AbstractIncomingMessage,
        queue: str,
        headers: dict[str, Any],
        fields: Mapping[str, str],
    ) -> bool:
        """Put a copy of the message on `queue` and wait for the broker's confirm."""
        assert self._channel is not None
        copy = aio_pika.Message(
            body=message.body,
            headers=headers,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
            timestamp=message.timestamp,
            app_id=message.app_id,
        )
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self._channel.default_exchange.publish(copy, routing_key=queue)
        except BROKER_ERRORS as error:
            # Unacknowledged, the message comes back: on a new channel after a reconnect,
            # or now. The broker's delivery limit bounds how often.
            log.error(
                "event.requeued",
                consumer=self.service,
                queue=queue,
                error=str(error) or type(error).__name__,
                **fields,
            )
            with contextlib.suppress(*BROKER_ERRORS):
                await message.nack(requeue=True)
            return False
        return True

    async def _ack(self, message: AbstractIncomingMessage, fields: Mapping[str, str]) -> None:
        try:
            await message.ack()
        except BROKER_ERRORS as error:
            # The channel is gone: the broker redelivers, and the event id makes that harmless.
            log.info(
                "event.ack_lost",
                consumer=self.service,
                error=str(error) or type(error).__name__,
                **fields,
            )
