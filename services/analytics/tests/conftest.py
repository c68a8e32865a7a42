"""Fixtures of the analytics service's tests: SecantusDB, real tokens, RabbitMQ helpers.

Callers' tokens are real EdDSA JWTs signed by a key the service is composed to trust. The
service's consumer points at a port nothing listens on unless a test gives it a broker and
an exchange of its own (whose queues it deletes afterwards), so no test event reaches a
broker other suites use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import jwt
import pytest
from bson import ObjectId
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient
from taskmesh.events.v1 import events_pb2
from taskmesh_analytics.main import analytics_service
from taskmesh_analytics.repository import INDEXES, Retention
from taskmesh_analytics.settings import AnalyticsSettings
from taskmesh_chassis.events import Event, EventTopology, encode_event
from taskmesh_chassis.events.envelope import CONTENT_TYPE, new_event
from taskmesh_chassis.events.topology import delete_service_queues
from taskmesh_chassis.identity import StaticJwksProvider
from taskmesh_chassis.mongo import create_mongo_client, ensure_indexes
from taskmesh_chassis.testing import find_free_port

SIGNING_KEY = Ed25519PrivateKey.generate()
KID = "analytics-test-key"
SERVICE = analytics_service(StaticJwksProvider({KID: SIGNING_KEY.public_key()}))
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
RETENTION = Retention(minute=timedelta(days=8), hour=timedelta(days=90), day=timedelta(days=1830))

Metadata = list[tuple[str, str]]


def mint_token(user_id: str, role: str = "user") -> str:
    """An access token for `user_id`, as auth signs them."""
    now = time.time()
    claims = {
        "iss": "taskmesh",
        "aud": "taskmesh-api",
        "sub": user_id,
        "role": role,
        "iat": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "sid": uuid.uuid4().hex,
    }
    return jwt.encode(claims, SIGNING_KEY, algorithm="EdDSA", headers={"kid": KID, "typ": "at+jwt"})


def as_user(user_id: str, role: str = "user") -> Metadata:
    """gRPC metadata presenting a signed-in user."""
    return [("authorization", f"Bearer {mint_token(user_id, role)}")]


def as_admin() -> Metadata:
    """gRPC metadata presenting a signed-in admin."""
    return as_user(new_id(), "admin")


def new_id() -> str:
    return str(ObjectId())


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def request_record(
    route: str = "/api/v1/tasks/{id}",
    *,
    method: str = "GET",
    status: int = 200,
    duration_ms: float = 12.5,
    at: datetime | None = None,
    user_id: str = "",
) -> events_pb2.RequestRecord:
    """One record as the gateway ships it."""
    return events_pb2.RequestRecord(
        request_id=uuid.uuid4().hex,
        route=route,
        method=method,
        status=status,
        duration_ms=duration_ms,
        time=stamp(at or datetime.now(UTC)),
        user_id=user_id,
        instance="gateway-test",
    )


def records_event(*records: events_pb2.RequestRecord) -> Event:
    """A `gateway.request_records` event carrying `records`."""
    payload = events_pb2.RequestRecordBatch(records=list(records))
    return new_event(
        "gateway.request_records",
        source="taskmesh/gateway",
        subject="gateway-test",
        payload=payload,
    )


def domain_event(event_type: str, payload: Message, *, at: datetime | None = None) -> Event:
    """A domain event of `event_type`, at `at` (now by default)."""
    event = new_event(event_type, source="taskmesh/test", subject=new_id(), payload=payload)
    return event if at is None else replace(event, time=at)


@pytest.fixture
async def analytics_db(secantus_url: str) -> AsyncIterator[Any]:
    """A fresh database laid out as the service lays out its own (its indexes)."""
    client: AsyncMongoClient[dict[str, Any]] = create_mongo_client(
        secantus_url, appname="taskmesh-analytics-tests"
    )
    database = client[f"test_analytics_{uuid.uuid4().hex[:12]}"]
    await ensure_indexes(database, INDEXES)
    yield database
    await client.close()


@pytest.fixture
def dead_amqp_url() -> str:
    return f"amqp://guest:guest@127.0.0.1:{find_free_port()}/"


@pytest.fixture
async def exchange() -> AsyncIterator[str]:
    """An exchange of the test's own; the analytics queues on it are deleted afterwards."""
    name = f"test.analytics.{uuid.uuid4().hex[:10]}"
    yield name
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        settings = AnalyticsSettings(events_exchange=name, events_retry_delays_s=(0.2, 0.5))
        await delete_service_queues(
            channel, settings.event_topology, "analytics", settings.retry_policy
        )
        await channel.exchange_delete(name)


def service_settings(
    secantus_url: str, port: int, amqp_url: str, **extra: Any
) -> AnalyticsSettings:
    """The service's settings on a free port, a database of its own and the given broker."""
    return AnalyticsSettings(
        grpc_port=port,
        metrics_port=0,
        mongodb_url=secantus_url,
        mongodb_database_prefix=f"test_{uuid.uuid4().hex[:12]}_",
        auth_grpc_target="127.0.0.1:1",
        amqp_url=amqp_url,
        events_retry_delays_s=(0.2, 0.5),
        shutdown_grace_s=1.0,
        **extra,
    )


async def wait_for_queue(topology: EventTopology) -> None:
    """Wait until the consumer declared its queue: events published before it are not kept."""
    name = topology.queues_of("analytics").main
    connection = await aio_pika.connect(AMQP_URL)
    async with connection, asyncio.timeout(15):
        while True:
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
                return
            except aio_pika.exceptions.ChannelClosed:
                await asyncio.sleep(0.1)


async def publish(topology: EventTopology, *events: Event) -> None:
    """Publish events on the topology's exchange as the relay and the gateway do."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.exchange)
        for event in events:
            message = aio_pika.Message(
                body=encode_event(event),
                content_type=CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event.id,
                type=event.type,
            )
            await exchange.publish(message, routing_key=event.type)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    """Wait until `check()` is true; TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)
