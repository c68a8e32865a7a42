"""Fixtures for the event backbone's integration tests: real RabbitMQ and SecantusDB.

Every test gets an exchange (and so queue names) of its own, with a random suffix, and
deletes what it declared afterwards; each test's databases are fresh ones.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from pymongo import AsyncMongoClient
from taskmesh_chassis.events import EventTopology
from taskmesh_chassis.events.topology import delete_service_queues
from taskmesh_chassis.mongo import create_mongo_client

from .support import AMQP_URL, Backbone, Brokers, Database, Declared, fresh_database


@pytest.fixture
def suffix() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topology(suffix: str) -> EventTopology:
    return EventTopology(exchange=f"test.events.{suffix}")


@pytest.fixture
async def mongo(secantus_url: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client = create_mongo_client(secantus_url, appname="taskmesh-events-tests")
    yield client
    await client.close()


@pytest.fixture
async def producer_db(mongo: AsyncMongoClient[dict[str, Any]]) -> Database:
    return await fresh_database(mongo, "tasks")


@pytest.fixture
async def consumer_db(mongo: AsyncMongoClient[dict[str, Any]]) -> Database:
    return await fresh_database(mongo, "effects")


@pytest.fixture
async def brokers(suffix: str) -> AsyncIterator[Brokers]:
    opened = Brokers(suffix)
    yield opened
    for connection in opened.opened:
        await connection.close()


@pytest.fixture
async def declared(topology: EventTopology) -> AsyncIterator[Declared]:
    record = Declared(topology)
    yield record
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for service, policy in record.services:
            await delete_service_queues(channel, topology, service, policy)
        await channel.exchange_delete(topology.exchange)


@pytest.fixture
async def backbone(
    topology: EventTopology, declared: Declared, brokers: Brokers
) -> AsyncIterator[Backbone]:
    parts = Backbone(topology, declared)
    yield parts
    for part in reversed(parts.running):
        await part.stop()
