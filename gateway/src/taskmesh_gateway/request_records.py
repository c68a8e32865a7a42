"""Request records: one per API request, shipped to analytics in batches over RabbitMQ.

`RequestRecordingMiddleware` (pure ASGI, just inside `RequestContextMiddleware`) notes, once a
request is answered, its route template (never the raw path), method, status, latency, caller
and request id, and hands them to the `RequestRecorder`: a bounded in-memory buffer. Recording
is a synchronous append, O(1), with no I/O: a full buffer drops the record and counts it, so
neither a slow nor an absent broker can ever slow a request.

`RecordShipper` runs in the background: every `REQUEST_RECORDS_FLUSH_S`, or as soon as
`REQUEST_RECORDS_BATCH` records wait, it publishes them as `gateway.request_records` events
(a `RequestRecordBatch` in the chassis envelope) on the events exchange, persistently, with
publisher confirms, over the gateway's robust RabbitMQ connection. Records leave the buffer
only once the broker confirmed their batch; a failed publish is retried with backoff, with the
same event id, so a consumer that got a batch whose confirm was lost drops the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.context import RequestContext
from taskmesh_chassis.events import EventTopology, encode_event
from taskmesh_chassis.events.broker import BROKER_ERRORS
from taskmesh_chassis.events.envelope import CONTENT_TYPE, Event, new_event
from taskmesh_chassis.events.relay import backoff_s
from taskmesh_chassis.events.topology import declare_exchange

from taskmesh_gateway.metrics import (
    REQUEST_RECORD_PUBLISH_FAILURES,
    REQUEST_RECORDS,
    REQUEST_RECORDS_BUFFERED,
)
from taskmesh_gateway.middleware import DOCS_PREFIX, UNMATCHED_ROUTE, route_template

log = structlog.get_logger(__name__)

EVENT_TYPE: Final = "gateway.request_records"
SOURCE: Final = "taskmesh/gateway"
UNRECORDED_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
"""Operational routes (probes, scrapes) are not API traffic; neither is the documentation."""
RECORDED_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Any other method is recorded as `OTHER`, so a client cannot invent values."""
PUBLISH_TIMEOUT_S: Final = 5.0
SHUTDOWN_FLUSH_S: Final = 5.0
"""How long stopping may spend publishing what is left; the rest is counted as failed."""
_NO_REQUEST: Final = RequestContext(request_id="")
"""A batch belongs to no request (the shipper runs outside any)."""

_RECORDED = REQUEST_RECORDS.labels("recorded")
_DROPPED = REQUEST_RECORDS.labels("dropped")
_SHIPPED = REQUEST_RECORDS.labels("shipped")
_FAILED = REQUEST_RECORDS.labels("failed")


class RequestRecord(NamedTuple):
    """What is kept of one answered request until it is shipped."""

    request_id: str
    route: str
    """The route template (`/api/v1/tasks/{id}`); "" when no route matched."""
    method: str
    status: int
    duration_s: float
    time_s: float
    """When the request arrived, in seconds since the epoch."""
    user_id: str
    """The admitted caller; "" for an anonymous request (or a refused token)."""


class RequestRecorder:
    """The bounded buffer of this instance's request records.

    `record` only appends (or drops): it never waits and never fails a request. The shipper
    takes batches off the front; a batch being published still counts towards the bound.
    """

    def __init__(self, *, capacity: int, batch_size: int) -> None:
        self.capacity = capacity
        self.batch_size = batch_size
        self._records: deque[RequestRecord] = deque()
        self._in_flight = 0
        self.batch_ready = asyncio.Event()
        """Set once `batch_size` records wait; the shipper clears it when it takes them."""
        REQUEST_RECORDS_BUFFERED.set_function(lambda: len(self))

    def __len__(self) -> int:
        """Records held: waiting, plus those of the batch being published."""
        return len(self._records) + self._in_flight

    @property
    def waiting(self) -> int:
        """Records not yet taken into a batch."""
        return len(self._records)

    def record(self, record: RequestRecord) -> bool:
        """Buffer one record; False (and counted as dropped) when the buffer is full."""
        if len(self._records) + self._in_flight >= self.capacity:
            _DROPPED.inc()
            return False
        self._records.append(record)
        _RECORDED.inc()
        if len(self._records) >= self.batch_size:
            self.batch_ready.set()
        return True

    def take_batch(self) -> list[RequestRecord]:
        """Take up to `batch_size` records off the front; they stay counted until settled."""
        count = min(self.batch_size, len(self._records))
        batch = [self._records.popleft() for _ in range(count)]
        self._in_flight += count
        if len(self._records) < self.batch_size:
            self.batch_ready.clear()
        return batch

    def settle(self, count: int, *, shipped: bool) -> None:
        """A taken batch of `count` records was shipped, or is given up on (failed)."""
        self._in_flight -= count
        (_SHIPPED if shipped else _FAILED).inc(count)

    def discard_waiting(self) -> int:
        """Give up on every waiting record (counted as failed); how many there were."""
        count = len(self._records)
        self._records.clear()
        self.batch_ready.clear()
        _FAILED.inc(count)
        return count


class RequestRecordingMiddleware:
    """Records every answered HTTP request outside the operational routes and the docs."""

    def __init__(self, app: ASGIApp, *, recorder: RequestRecorder) -> None:
        self.app = app
        self._recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, noting its status; record it once it is answered."""
        if scope["type"] != "http" or not is_recorded_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        arrived = time.time()
        started = time.perf_counter()
        status = 500  # what an exception becomes (RequestContextMiddleware answers it)

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self._recorder.record(record_of(scope, status, arrived, time.perf_counter() - started))


def is_recorded_path(path: str) -> bool:
    """Whether requests to `path` are recorded (all but probes, metrics and the docs)."""
    if path in UNRECORDED_PATHS:
        return False
    return not (path == DOCS_PREFIX or path.startswith(DOCS_PREFIX + "/"))


def record_of(scope: Scope, status: int, arrived_s: float, duration_s: float) -> RequestRecord:
    """The record of an answered request, from what routing and admission left in its scope."""
    state = scope.get("state") or {}
    admission = state.get("admission")
    caller = getattr(admission, "caller", None)
    route = route_template(scope)
    method: str = scope["method"]
    return RequestRecord(
        request_id=state.get("request_id", ""),
        route="" if route == UNMATCHED_ROUTE else route,
        method=method if method in RECORDED_METHODS else "OTHER",
        status=status,
        duration_s=duration_s,
        time_s=arrived_s,
        user_id=caller.user_id if caller is not None else "",
    )


def batch_event(records: list[RequestRecord], *, instance: str) -> Event:
    """The `gateway.request_records` event carrying `records`, about this instance."""
    payload = events_pb2.RequestRecordBatch(
        records=[
            events_pb2.RequestRecord(
                request_id=record.request_id,
                route=record.route,
                method=record.method,
                status=record.status,
                duration_ms=round(record.duration_s * 1000, 3),
                time=_timestamp(record.time_s),
                user_id=record.user_id,
                instance=instance,
            )
            for record in records
        ]
    )
    return new_event(
        EVENT_TYPE, source=SOURCE, subject=instance, payload=payload, context=_NO_REQUEST
    )


def _timestamp(seconds: float) -> Timestamp:
    whole = int(seconds)
    return Timestamp(seconds=whole, nanos=int((seconds - whole) * 1e9))


@dataclass(slots=True)
class _Batch:
    """A batch taken off the buffer and encoded once: retries publish the very same event."""

    count: int
    event: Event
    body: bytes


class RecordShipper:
    """Publishes the recorder's batches while the instance runs, and what is left on stop."""

    def __init__(
        self,
        recorder: RequestRecorder,
        connection: AbstractRobustConnection,
        topology: EventTopology,
        *,
        instance: str,
        flush_interval_s: float,
        publish_timeout_s: float = PUBLISH_TIMEOUT_S,
        shutdown_flush_s: float = SHUTDOWN_FLUSH_S,
    ) -> None:
        self._recorder = recorder
        self._connection = connection
        self._topology = topology
        self._instance = instance
        self._flush_interval_s = flush_interval_s
        self._publish_timeout_s = publish_timeout_s
        self._shutdown_flush_s = shutdown_flush_s
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._pending: _Batch | None = None
        self._running: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Ship in the background; never waits for the broker."""
        self._running = asyncio.create_task(self._run(), name="request-records-shipper")

    async def stop(self) -> None:
        """Stop shipping; publish what is held within `shutdown_flush_s` if the broker is up.

        Whatever is still held afterwards is counted as failed (and logged).
        """
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)
            self._running = None
        if len(self._recorder) and self._is_connected():
            try:
                async with asyncio.timeout(self._shutdown_flush_s):
                    await self._ship_held()
            except Exception as error:
                # Stopping goes on whatever happened: the lifespan still has to close the rest.
                if isinstance(error, (*BROKER_ERRORS, TimeoutError)):
                    log.warning(
                        "request_records.final_flush_failed", error_type=type(error).__name__
                    )
                else:
                    log.exception(
                        "request_records.final_flush_failed", error_type=type(error).__name__
                    )
        lost = self._recorder.discard_waiting()
        if self._pending is not None:
            lost += self._pending.count
            self._recorder.settle(self._pending.count, shipped=False)
            self._pending = None
        if lost:
            log.warning("request_records.lost", count=lost)
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(*BROKER_ERRORS):
                await self._channel.close()
        self._channel = None
        self._exchange = None

    async def _run(self) -> None:
        failures = 0
        while True:
            if failures:
                await asyncio.sleep(backoff_s(failures))
            else:
                await self._wait_for_flush()
            if not len(self._recorder):
                continue
            try:
                await self._ship_held()
            except Exception as error:
                # Whatever went wrong, shipping must go on: the records wait in the buffer.
                failures += 1
                REQUEST_RECORD_PUBLISH_FAILURES.inc()
                fields = {
                    "error_type": type(error).__name__,
                    "held": len(self._recorder),
                    "retry_in_s": backoff_s(failures),
                }
                if isinstance(error, (*BROKER_ERRORS, TimeoutError)):
                    log.warning("request_records.publish_failed", **fields)
                else:
                    log.exception("request_records.publish_failed", **fields)
                continue
            failures = 0

    async def _wait_for_flush(self) -> None:
        """Until the flush interval passed or a full batch waits."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._flush_interval_s):
                await self._recorder.batch_ready.wait()

    async def _ship_held(self) -> None:
        """Publish the pending batch, then batches of what waits, until nothing is held."""
        for batch in self._batches():
            exchange = await self._declared_exchange()
            async with asyncio.timeout(self._publish_timeout_s):
                await exchange.publish(self._message(batch), routing_key=EVENT_TYPE)
            self._pending = None
            self._recorder.settle(batch.count, shipped=True)
            log.debug("request_records.shipped", count=batch.count, event_id=batch.event.id)

    def _batches(self) -> Iterator[_Batch]:
        while self._pending is not None or self._recorder.waiting:
            if self._pending is None:
                self._pending = self._encoded(self._recorder.take_batch())
            yield self._pending

    def _encoded(self, records: list[RequestRecord]) -> _Batch:
        """The batch of `records`, encoded; records that cannot be are given up on (failed)."""
        try:
            event = batch_event(records, instance=self._instance)
            return _Batch(len(records), event, encode_event(event))
        except Exception:
            self._recorder.settle(len(records), shipped=False)
            raise

    def _is_connected(self) -> bool:
        return self._connection.connected.is_set() and not self._connection.is_closed

    async def _declared_exchange(self) -> AbstractExchange:
        if not self._is_connected():
            raise ConnectionError("not connected to RabbitMQ")
        if self._channel is None:
            # Robust: after a reconnect aio-pika reopens it and declares the exchange again.
            self._channel = await self._connection.channel(publisher_confirms=True)
        if self._exchange is None:
            self._exchange = await declare_exchange(self._channel, self._topology)
        return self._exchange

    def _message(self, batch: _Batch) -> aio_pika.Message:
        return aio_pika.Message(
            body=batch.body,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=batch.event.id,
            type=EVENT_TYPE,
            timestamp=batch.event.time,
            app_id=SOURCE,
        )
