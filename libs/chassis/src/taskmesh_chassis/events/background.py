"""A service's relay and consumer as start-up and shutdown hooks that never hold up its start.

Each connects to RabbitMQ in the background, retrying with backoff until the broker answers,
and only then starts its part; the service serves meanwhile. `start` returns after the first
attempt (at most `FIRST_ATTEMPT_WAIT_S`): with the broker up, the consumer's queue is declared
and bound before the service opens its port, so a process started after it (in `make run`,
auth, whose events it consumes) publishes nothing the queue misses. Events wait in the outbox (for
the relay) or in the service's durable queue (for the consumer) until then. Each part opens
its own connection: RabbitMQ's flow control blocks a publishing connection, and a consumer
should never be slowed by that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Protocol

import structlog
from aio_pika.abc import AbstractRobustConnection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from taskmesh_chassis.events.broker import BROKER_ERRORS, connect_broker
from taskmesh_chassis.events.consumer import EventConsumer, Handler
from taskmesh_chassis.events.outbox import Outbox
from taskmesh_chassis.events.relay import OutboxRelay, backoff_s
from taskmesh_chassis.events.settings import EventSettings
from taskmesh_chassis.events.topology import EventTopology
from taskmesh_chassis.mongo import Document

log = structlog.get_logger(__name__)

FIRST_ATTEMPT_WAIT_S = 5.0


class _Part(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class _Background:
    """Connects, builds the part on the connection, starts it; retries until that succeeds."""

    def __init__(self, amqp_url: str, *, connection_name: str, what: str) -> None:
        self._amqp_url = amqp_url
        self._connection_name = connection_name
        self._what = what
        self._task: asyncio.Task[None] | None = None
        self._part: _Part | None = None
        self._broker: AbstractRobustConnection | None = None
        self.started = asyncio.Event()
        self._first_attempt_done = asyncio.Event()

    def _build(self, broker: AbstractRobustConnection) -> _Part:
        raise NotImplementedError

    async def start(self) -> None:
        """Start connecting and, once connected, the part; return after the first attempt."""
        self._task = asyncio.create_task(self._connect_and_start(), name=f"{self._what}-start")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_ATTEMPT_WAIT_S):
                await self._first_attempt_done.wait()

    async def stop(self) -> None:
        """Stop the part (letting its work in flight finish) and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._part is not None:
            await self._part.stop()
        if self._broker is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await self._broker.close()

    async def _connect_and_start(self) -> None:
        failures = 0
        while True:
            try:
                if self._broker is None:
                    self._broker = await connect_broker(
                        self._amqp_url, connection_name=self._connection_name
                    )
                part = self._build(self._broker)
                await part.start()
                self._part = part
                self.started.set()
                self._first_attempt_done.set()
                return
            except (*BROKER_ERRORS, PyMongoError) as error:
                self._first_attempt_done.set()
                failures += 1
                delay = backoff_s(failures)
                log.warning(
                    f"{self._what}_start_failed",
                    error_type=type(error).__name__,
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)


class BackgroundRelay(_Background):
    """Starts an outbox relay once RabbitMQ answers; events wait in the outbox meanwhile."""

    def __init__(
        self,
        outbox: Outbox,
        amqp_url: str,
        *,
        connection_name: str,
        topology: EventTopology | None = None,
    ) -> None:
        super().__init__(amqp_url, connection_name=connection_name, what="outbox.relay")
        self._outbox = outbox
        self._topology = topology

    def _build(self, broker: AbstractRobustConnection) -> OutboxRelay:
        return OutboxRelay(self._outbox, broker, topology=self._topology)


class BackgroundConsumer(_Background):
    """Starts a service's event consumer once RabbitMQ answers.

    Events published meanwhile wait in the service's durable queue, which exists from the
    consumer's first start (docs/events.md, "Topology").
    """

    def __init__(
        self,
        *,
        service: str,
        database: AsyncDatabase[Document],
        handlers: Mapping[str, Handler],
        settings: EventSettings,
        amqp_url: str,
        connection_name: str,
    ) -> None:
        super().__init__(amqp_url, connection_name=connection_name, what="events.consumer")
        self._service = service
        self._database = database
        self._handlers = dict(handlers)
        self._settings = settings

    def _build(self, broker: AbstractRobustConnection) -> EventConsumer:
        return EventConsumer(
            service=self._service,
            database=self._database,
            broker=broker,
            handlers=self._handlers,
            topology=self._settings.event_topology,
            retry_policy=self._settings.retry_policy,
            prefetch=self._settings.events_prefetch,
            delivery_limit=self._settings.events_delivery_limit,
        )
