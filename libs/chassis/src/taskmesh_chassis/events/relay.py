"""The relay: publishes an outbox's pending events to the exchange, then marks them sent.

It wakes when a transaction of this process commits events, when the outbox's change
stream reports an insert by another instance, and every `sweep_interval_s` regardless; it
also sweeps on start, which is how events left by a crash get published. Each event is
published persistently and counts as sent only once the broker confirms it; events of one
subject are published one after another, so a failure never lets a later event of that
subject overtake an earlier one. A failed pass leaves the unconfirmed events pending and is
retried with backoff; the robust connection meanwhile reconnects and re-declares the exchange.

Each publish runs in a producer span, a child of the span that recorded the event; its trace
context goes in the message's `traceparent`/`tracestate` headers for the consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Final

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection
from opentelemetry.trace import Span, SpanKind
from pymongo.errors import OperationFailure, PyMongoError

from taskmesh_chassis.events import metrics
from taskmesh_chassis.events.broker import BROKER_ERRORS
from taskmesh_chassis.events.envelope import CONTENT_TYPE
from taskmesh_chassis.events.lease import RelayLease
from taskmesh_chassis.events.outbox import Outbox, OutboxRecord
from taskmesh_chassis.events.topology import EventTopology, declare_exchange
from taskmesh_chassis.mongo import Document
from taskmesh_chassis.tracing import (
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    context_from_headers,
    get_tracer,
    trace_headers,
)

log = structlog.get_logger(__name__)
_tracer = get_tracer(__name__)

# Server error codes meaning "change streams are not available here" (standalone server).
_CHANGE_STREAMS_UNSUPPORTED: Final = frozenset({40573, 40324, 115})
_MAX_BACKOFF_S: Final = 5.0


def backoff_s(failures: int, *, first_s: float = 0.2, max_s: float = _MAX_BACKOFF_S) -> float:
    """The pause after `failures` consecutive failed passes: doubling from `first_s`, capped."""
    return float(min(max_s, first_s * 2 ** max(0, failures - 1)))


class OutboxRelay:
    """Publishes one outbox to the events exchange for as long as it runs."""

    def __init__(
        self,
        outbox: Outbox,
        broker: AbstractRobustConnection,
        *,
        topology: EventTopology | None = None,
        batch_size: int = 200,
        sweep_interval_s: float = 5.0,
        publish_timeout_s: float = 10.0,
        lease_ttl_s: float = 15.0,
        watch_changes: bool = True,
    ) -> None:
        self._outbox = outbox
        self._broker = broker
        self._topology = topology or EventTopology()
        self._batch_size = batch_size
        self._sweep_interval_s = sweep_interval_s
        self._publish_timeout_s = publish_timeout_s
        self._watch_changes = watch_changes
        self._lease = RelayLease(outbox.database, ttl_s=lease_ttl_s)
        self._lease_renewed_at = 0.0
        self._wake = asyncio.Event()
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._source = outbox.source

    async def start(self) -> None:
        """Ensure the outbox indexes, declare the exchange and start relaying."""
        self._stopping = False
        self._stop_requested.clear()
        await self._outbox.ensure_indexes()
        channel = await self._broker.channel(publisher_confirms=True)
        self._channel = channel
        self._exchange = await declare_exchange(channel, self._topology)
        self._unsubscribe = self._outbox.on_commit(self.wake)
        self._wake.set()
        self._run_task = asyncio.create_task(self._run(), name="outbox-relay")
        if self._watch_changes:
            self._watch_task = asyncio.create_task(self._watch_outbox(), name="outbox-watch")
        log.info("outbox.relay_started", source=self._source, exchange=self._topology.exchange)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the batch being published (at most `timeout_s`), then stop and release."""
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
            self._watch_task = None
        if self._run_task is not None:
            _, still_running = await asyncio.wait([self._run_task], timeout=timeout_s)
            for task in still_running:
                task.cancel()
            await asyncio.gather(self._run_task, return_exceptions=True)
            self._run_task = None
        with contextlib.suppress(PyMongoError):
            await self._lease.release()
        self._lease_renewed_at = 0.0
        if self._channel is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await self._channel.close()
        log.info("outbox.relay_stopped", source=self._source)

    def wake(self) -> None:
        """Ask for a pass soon (called after a commit added events)."""
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                holds_lease = await self._hold_lease()
                if holds_lease:
                    await self._publish_backlog()
                failures = 0
            except Exception as error:
                # Whatever went wrong, the relay must go on: the events wait in the outbox.
                failures += 1
                delay = backoff_s(failures)
                metrics.PUBLISH_FAILURES.labels(self._source).inc()
                fields = {
                    "source": self._source,
                    "error": str(error) or type(error).__name__,
                    "error_type": type(error).__name__,
                    "retry_in_s": delay,
                }
                if isinstance(error, (*BROKER_ERRORS, PyMongoError)):
                    log.warning("outbox.relay_failed", **fields)
                else:
                    log.exception("outbox.relay_failed", **fields)
                await self._update_backlog_gauge()
                await self._pause(delay)
                continue
            timeout = self._sweep_interval_s if holds_lease else self._lease.ttl_s / 3
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _pause(self, delay_s: float) -> None:
        # Only stopping interrupts it: new commits must not turn backoff into a busy loop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):
                await self._stop_requested.wait()

    async def _hold_lease(self) -> bool:
        """Tell whether this instance holds the lease, renewing it once a third has passed."""
        if time.monotonic() - self._lease_renewed_at < self._lease.ttl_s / 3:
            return True
        holds = await self._lease.acquire()
        self._lease_renewed_at = time.monotonic() if holds else 0.0
        return holds

    async def _publish_backlog(self) -> None:
        published = 0
        complete = True
        seen: set[str] = set()
        async with contextlib.aclosing(self._outbox.pending_batches(self._batch_size)) as batches:
            async for batch in batches:
                records = [record for record in batch if record.id not in seen]
                seen.update(record.id for record in records)
                published += await self._publish_batch(records)
                if self._stopping or not await self._hold_lease():
                    complete = False
                    break
        if published:
            log.debug("outbox.pass_published", source=self._source, count=published)
        if complete:
            # Everything read was confirmed; what committed meanwhile is the next pass's.
            metrics.OUTBOX_BACKLOG.labels(self._source).set(0)
        else:
            await self._update_backlog_gauge()

    async def _publish_batch(self, records: Sequence[OutboxRecord]) -> int:
        """Publish the records, subjects in parallel; mark the confirmed ones sent."""
        by_subject: dict[str, list[OutboxRecord]] = {}
        for record in records:
            by_subject.setdefault(record.subject, []).append(record)
        confirmed: list[OutboxRecord] = []
        outcomes = await asyncio.gather(
            *(self._publish_in_order(chain, confirmed) for chain in by_subject.values()),
            return_exceptions=True,
        )
        await self._outbox.mark_sent([record.id for record in confirmed])
        now = datetime.now(UTC)
        for record in confirmed:
            metrics.OUTBOX_DELAY_SECONDS.labels(self._source).observe(
                max(0.0, (now - record.created_at).total_seconds())
            )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return len(confirmed)

    async def _publish_in_order(
        self, chain: Sequence[OutboxRecord], confirmed: list[OutboxRecord]
    ) -> None:
        """Publish one subject's records, each only after the previous one was confirmed."""
        assert self._exchange is not None
        for record in chain:
            with self._producer_span(record):
                started = time.perf_counter()
                async with asyncio.timeout(self._publish_timeout_s):
                    await self._exchange.publish(
                        self._message(record), routing_key=record.type, mandatory=False
                    )
                confirmed.append(record)
                metrics.PUBLISH_SECONDS.labels(self._source).observe(time.perf_counter() - started)
                metrics.EVENTS_PUBLISHED.labels(self._source, record.type).inc()
                log.info(
                    "outbox.published",
                    event_id=record.id,
                    event_type=record.type,
                    subject=record.subject,
                )

    def _producer_span(self, record: OutboxRecord) -> AbstractContextManager[Span]:
        """A producer span continuing the trace the event was recorded in (a new one if none)."""
        recorded = {TRACEPARENT_HEADER: record.traceparent, TRACESTATE_HEADER: record.tracestate}
        return _tracer.start_as_current_span(
            f"publish {record.type}",
            context=context_from_headers(recorded),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": self._topology.exchange,
                "messaging.rabbitmq.destination.routing_key": record.type,
                "messaging.message.id": record.id,
            },
        )

    def _message(self, record: OutboxRecord) -> aio_pika.Message:
        # Within the producer span: consumers continue the trace from it.
        return aio_pika.Message(
            body=record.body,
            headers=dict(trace_headers()),
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=record.id,
            type=record.type,
            timestamp=record.created_at,
            app_id=self._source,
        )

    async def _update_backlog_gauge(self) -> None:
        with contextlib.suppress(PyMongoError):
            backlog = await self._outbox.count_pending()
            metrics.OUTBOX_BACKLOG.labels(self._source).set(backlog)

    async def _watch_outbox(self) -> None:
        """Wake the relay whenever any instance inserts into the outbox."""
        pipeline: list[Document] = [
            {"$match": {"operationType": "insert"}},
            {"$project": {"_id": 1}},
        ]
        failures = 0
        while not self._stopping:
            try:
                async with await self._outbox.collection.watch(
                    pipeline, max_await_time_ms=1000
                ) as stream:
                    # Inserts made while the stream was (re)opening are covered by one pass.
                    self._wake.set()
                    failures = 0
                    while not self._stopping:
                        if await stream.try_next() is not None:
                            self._wake.set()
            except PyMongoError as error:
                unsupported = isinstance(error, OperationFailure) and (
                    error.code in _CHANGE_STREAMS_UNSUPPORTED
                )
                if unsupported:
                    log.warning(
                        "outbox.change_stream_unavailable",
                        source=self._source,
                        error=str(error),
                        sweep_interval_s=self._sweep_interval_s,
                    )
                    return
                failures += 1
                log.warning("outbox.change_stream_failed", source=self._source, error=str(error))
                await asyncio.sleep(backoff_s(failures))
