"""Helpers of the event backbone's integration tests: handlers, writers, fault injection."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aio_pika.abc import AbstractRobustConnection
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.events import (
    Event,
    EventConsumer,
    EventTopology,
    Handler,
    Outbox,
    OutboxRelay,
    RetryPolicy,
    connect_broker,
)
from taskmesh_chassis.testing import drop_connection as drop_connection

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
FAST_RETRIES = RetryPolicy(delays_s=(0.05, 0.1))

Database = AsyncDatabase[dict[str, Any]]


async def fresh_database(mongo: AsyncMongoClient[dict[str, Any]], *collections: str) -> Database:
    """A new database with its collections created (implicit creation conflicts in txns)."""
    database = mongo[f"test_events_{uuid.uuid4().hex[:12]}"]
    for name in collections:
        await database.create_collection(name)
    return database


@dataclass
class Brokers:
    """Robust connections opened by a test, each named so the broker can drop it."""

    suffix: str
    opened: list[AbstractRobustConnection] = field(default_factory=list)

    async def connect(self, role: str) -> tuple[AbstractRobustConnection, str]:
        name = f"taskmesh-test-{self.suffix}-{role}"
        connection = await connect_broker(AMQP_URL, connection_name=name, reconnect_interval_s=0.2)
        self.opened.append(connection)
        return connection, name


@dataclass
class Declared:
    """What a test declared on the broker, deleted when it ends."""

    topology: EventTopology
    services: list[tuple[str, RetryPolicy]] = field(default_factory=list)


@dataclass
class EffectLog:
    """A handler that stores one effect document per application, in the event's transaction."""

    database: Database
    calls: Counter[str] = field(default_factory=Counter)
    failing_subjects: set[str] = field(default_factory=set)

    async def handle(self, event: Event, session: AsyncClientSession) -> None:
        self.calls[event.id] += 1
        if event.subject in self.failing_subjects:
            raise RuntimeError(f"cannot apply {event.subject} yet")
        await self.database["effects"].insert_one(
            {"event_id": event.id, "subject": event.subject, "n": _sequence_number(event)},
            session=session,
        )

    async def count(self) -> int:
        return await self.database["effects"].count_documents({})

    async def applications_per_event(self) -> Counter[str]:
        documents = await self.database["effects"].find({}, {"event_id": 1}).to_list(None)
        return Counter(document["event_id"] for document in documents)

    async def numbers_by_subject(self) -> dict[str, list[int]]:
        """The payload numbers of each subject, in the order they were applied."""
        documents = await self.database["effects"].find({}).sort("_id", 1).to_list(None)
        by_subject: dict[str, list[int]] = {}
        for document in documents:
            by_subject.setdefault(document["subject"], []).append(document["n"])
        return by_subject


def _sequence_number(event: Event) -> int:
    payload = event.payload
    assert isinstance(payload, events_pb2.TaskDeleted)
    return int(payload.actor_id)


def payload_number(number: int, subject: str) -> events_pb2.TaskDeleted:
    """A payload carrying a number, so tests can check the order of application."""
    return events_pb2.TaskDeleted(task_id=subject, actor_id=str(number))


async def write_events(
    outbox: Outbox, numbers: range, *, subjects: int = 20, per_transaction: int = 10
) -> list[str]:
    """Commit one `tasks` document and `per_transaction` events per transaction; return ids."""
    event_ids: list[str] = []
    batch = list(numbers)
    for start in range(0, len(batch), per_transaction):
        async with outbox.transaction() as uow:
            chunk = batch[start : start + per_transaction]
            await outbox.database["tasks"].insert_one({"numbers": chunk}, session=uow.session)
            for number in chunk:
                subject = f"task-{number % subjects}"
                event = uow.add_event(
                    "task.deleted", subject=subject, payload=payload_number(number, subject)
                )
                event_ids.append(event.id)
    return event_ids


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 60.0, what: str = "condition"
) -> None:
    """Wait until `check()` holds, polling; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def metric(name: str, **labels: str) -> float:
    """The current value of a metric sample (0 when it was never touched)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Backbone:
    """Builds relays and consumers on this test's topology, and stops them at the end."""

    topology: EventTopology
    declared: Declared
    running: list[OutboxRelay | EventConsumer] = field(default_factory=list)

    async def relay(
        self, outbox: Outbox, broker: AbstractRobustConnection, **options: Any
    ) -> OutboxRelay:
        relay = OutboxRelay(outbox, broker, topology=self.topology, **options)
        await relay.start()
        self.running.append(relay)
        return relay

    async def consumer(
        self,
        service: str,
        database: Database,
        broker: AbstractRobustConnection,
        handlers: dict[str, Handler],
        retry_policy: RetryPolicy = FAST_RETRIES,
        **options: Any,
    ) -> EventConsumer:
        consumer = EventConsumer(
            service=service,
            database=database,
            broker=broker,
            handlers=handlers,
            topology=self.topology,
            retry_policy=retry_policy,
            **options,
        )
        self.declared.services.append((service, retry_policy))
        await consumer.start()
        self.running.append(consumer)
        return consumer

    async def stop(self, part: OutboxRelay | EventConsumer) -> None:
        self.running.remove(part)
        await part.stop()
