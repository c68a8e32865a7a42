"""This instance's own feed of user-facing events, from RabbitMQ into the hub.

Every gateway instance declares a queue of its own on the events exchange: exclusive to its
connection and deleted with it (so it exists only while the instance runs), bound to the
forwarded event types, consumed without acknowledgements (a message pushed to a socket is
a notification, not work: a client that missed one refetches). Every instance therefore sees
every change, whichever gateway the writer used, and forwards it to its own sockets.

After the robust connection (or the channel) is restored, a new queue with a new name is
declared: the broker may still hold the old connection, and with it the exclusive old name,
until it notices that connection is gone. An old queue goes by itself: with its connection
(exclusive), with its consumer (auto-delete), or after a minute unconsumed (`x-expires`).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Final

import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
    ConsumerTag,
)
from prometheus_client import Counter
from taskmesh_chassis.events import EventTopology, MalformedEvent, decode_event
from taskmesh_chassis.events.broker import BROKER_ERRORS
from taskmesh_chassis.events.topology import declare_exchange

from taskmesh_gateway.realtime.hub import Hub
from taskmesh_gateway.realtime.messages import FORWARDED_EVENT_TYPES, push_for

log = structlog.get_logger(__name__)

QUEUE_ARGUMENTS: Final = {
    # What the broker holds for an instance that stopped reading; the oldest go first.
    "x-max-length": 10_000,
    # A queue declared but never consumed (a subscription cut short) does not linger.
    "x-expires": 60_000,
}
RETRY_DELAYS_S: Final = (0.2, 0.4, 0.8, 1.6, 3.2, 5.0)

REALTIME_EVENTS = Counter(
    "taskmesh_websocket_events_total",
    "Events this instance consumed for its WebSockets, by type and outcome.",
    ["event_type", "outcome"],
)

_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]")


class EventStream:
    """Consumes the forwarded event types into the hub while the instance runs."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        topology: EventTopology,
        hub: Hub,
        *,
        instance_name: str,
    ) -> None:
        self._connection = connection
        self._topology = topology
        self._hub = hub
        self._queue_prefix = (
            f"{topology.exchange}.gateway.{_UNSAFE_NAME_CHARACTERS.sub('-', instance_name)}"
        )
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractRobustQueue | None = None
        self._consumer_tag: ConsumerTag | None = None
        self._reopened = asyncio.Event()
        self._running: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        """Set while a queue is bound and consumed (tests and logs wait on it)."""

    @property
    def queue_name(self) -> str | None:
        """The name of the current queue, if any."""
        return self._queue.name if self._queue is not None else None

    def start(self) -> None:
        """Subscribe in the background, once the connection is up, and after every restore."""
        self._running = asyncio.create_task(self._run(), name="websocket-event-stream")

    async def stop(self) -> None:
        """Stop consuming; the queue goes with the channel."""
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)
            self._running = None
        if self._channel is not None and not self._channel.is_closed:
            await asyncio.gather(self._channel.close(), return_exceptions=True)
        self._channel = None
        self._queue = None
        self._consumer_tag = None
        self.subscribed.clear()

    async def _run(self) -> None:
        failures = 0
        while True:
            self._reopened.clear()
            await self._connection.connected.wait()
            try:
                await self._subscribe()
            except BROKER_ERRORS as error:
                self.subscribed.clear()
                delay = RETRY_DELAYS_S[min(failures, len(RETRY_DELAYS_S) - 1)]
                failures += 1
                log.warning(
                    "websocket.events_subscribe_failed",
                    error_type=type(error).__name__,
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            await self._reopened.wait()
            self.subscribed.clear()
            log.info("websocket.events_resubscribing", previous_queue=self.queue_name)

    async def _subscribe(self) -> None:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self._connection.channel(publisher_confirms=False)
            self._channel.reopen_callbacks.add(self._on_reopen)
        channel = self._channel
        await self._cancel_previous()
        exchange = await declare_exchange(channel, self._topology)
        name = f"{self._queue_prefix}.{uuid.uuid4().hex[:12]}"
        queue = await channel.declare_queue(
            name,
            exclusive=True,
            auto_delete=True,
            arguments=QUEUE_ARGUMENTS,
            robust=False,
        )
        self._queue = queue
        for event_type in FORWARDED_EVENT_TYPES:
            await queue.bind(exchange, routing_key=event_type, robust=False)
        # The tag is known before the first delivery can arrive: the queue's name, unique.
        self._consumer_tag = name
        await queue.consume(
            self._on_message, no_ack=True, consumer_tag=self._consumer_tag, robust=False
        )
        self.subscribed.set()
        log.info("websocket.events_subscribed", queue=queue.name)

    async def _cancel_previous(self) -> None:
        """Cancel the previous consumer, should it still live; auto-delete removes its queue."""
        queue, tag = self._queue, self._consumer_tag
        self._queue, self._consumer_tag = None, None
        if queue is None or tag is None or queue.channel.is_closed:
            return
        try:
            # The broker ignores a tag it does not know (the consumer went with its channel).
            await queue.cancel(tag)
        except BROKER_ERRORS as error:
            log.info("websocket.events_cancel_failed", error_type=type(error).__name__)

    def _on_reopen(self, *_: object) -> None:
        self._reopened.set()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # No await before `deliver`: deliveries run as tasks in arrival order, so each
        # socket gets the events in the order the broker routed them.
        if message.consumer_tag != self._consumer_tag:
            return  # a superseded subscription's delivery: the current one brings it too
        try:
            event = decode_event(message.body)
        except MalformedEvent as error:
            REALTIME_EVENTS.labels("(malformed)", "malformed").inc()
            log.warning(
                "websocket.event_malformed", error=str(error), message_id=message.message_id
            )
            return
        push = push_for(event)
        if push is None:
            REALTIME_EVENTS.labels(event.type, "skipped").inc()
            return
        self._hub.deliver(push)
        REALTIME_EVENTS.labels(event.type, "delivered").inc()
