"""`user.deleted` in the notifications service, against real SecantusDB and RabbitMQ."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.events import UnprocessableEvent, encode_event
from taskmesh_chassis.events.envelope import CONTENT_TYPE, new_event
from taskmesh_chassis.events.topology import declare_exchange, delete_service_queues
from taskmesh_chassis.testing import (
    CapturedLogs,
    ExpectedIndex,
    assert_indexes_exist,
    capture_logs,
    running_service,
)
from taskmesh_notifications.events import NotificationEvents
from taskmesh_notifications.main import SERVICE
from taskmesh_notifications.repository import MongoNotificationStore
from taskmesh_notifications.settings import NotificationsSettings

pytestmark = pytest.mark.integration

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

Database = Any


def new_user_id() -> str:
    return str(ObjectId())


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Wait until `check()` holds, polling; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def settings(secantus_url: str, free_port: int) -> AsyncIterator[NotificationsSettings]:
    settings = NotificationsSettings(
        grpc_port=free_port,
        metrics_port=0,
        mongodb_url=secantus_url,
        mongodb_database_prefix=f"test_{uuid.uuid4().hex[:12]}_",
        amqp_url=AMQP_URL,
        events_exchange=f"test.events.{uuid.uuid4().hex[:10]}",
        shutdown_grace_s=1.0,
    )
    yield settings
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await delete_service_queues(
            channel, settings.event_topology, "notifications", settings.retry_policy
        )
        await channel.exchange_delete(settings.events_exchange)


@pytest.fixture
async def database(settings: NotificationsSettings) -> AsyncIterator[Database]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value(), tz_aware=True
    )
    yield client[settings.mongodb_database]
    await client.close()


@pytest.fixture
def logs() -> CapturedLogs:
    return capture_logs("notifications")


def notification(user_id: str, minutes_ago: int) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "type": "task.assigned",
        "title": "A task for you",
        "body": "",
        "task_id": str(ObjectId()),
        "read": False,
        "created_at": datetime.now(UTC) - timedelta(minutes=minutes_ago),
    }


async def publish_user_deleted(settings: NotificationsSettings, user_id: str) -> str:
    """Publish `user.deleted` to the exchange as auth's relay would; return the event id."""
    event = new_event(
        "user.deleted",
        source="taskmesh/auth",
        subject=user_id,
        payload=events_pb2.UserDeleted(
            user_id=user_id, email="gone@example.com", actor_id=new_user_id()
        ),
    )
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_exchange(channel, settings.event_topology)
        await exchange.publish(
            aio_pika.Message(
                body=encode_event(event),
                content_type=CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event.id,
                type=event.type,
            ),
            routing_key=event.type,
        )
    return event.id


async def test_user_deleted_deletes_only_that_users_notifications(
    settings: NotificationsSettings, database: Database, logs: CapturedLogs
) -> None:
    gone, staying = new_user_id(), new_user_id()
    async with running_service(SERVICE, settings):
        await database.notifications.insert_many(
            [notification(gone, minutes) for minutes in range(3)]
            + [notification(staying, minutes) for minutes in range(2)]
        )

        async def consumer_started() -> bool:
            return bool(logs.events("events.consumer_started"))

        await eventually(consumer_started, what="the consumer to start")
        event_id = await publish_user_deleted(settings, gone)

        async def processed() -> bool:
            return await database.processed_events.count_documents({"_id": event_id}) == 1

        await eventually(processed, what="the event to be processed")

    remaining = await database.notifications.find().to_list()
    assert sorted(document["user_id"] for document in remaining) == [staying, staying]
    (deleted,) = logs.events("notifications.user_notifications_deleted")
    assert (deleted["user_id"], deleted["count"]) == (gone, 3)


async def test_the_listing_index_exists_after_start_up(settings: NotificationsSettings) -> None:
    async with running_service(SERVICE, settings):
        await assert_indexes_exist(
            settings, "notifications", [ExpectedIndex([("user_id", 1), ("created_at", -1)])]
        )


async def test_user_deleted_without_a_valid_user_id_is_unprocessable(
    database: Database,
) -> None:
    handler = NotificationEvents(MongoNotificationStore(database)).delete_notifications_of_user
    event = new_event(
        "user.deleted",
        source="taskmesh/auth",
        subject="nobody",
        payload=events_pb2.UserDeleted(user_id="{'$ne': null}", actor_id=new_user_id()),
    )

    async with database.client.start_session() as session:
        with pytest.raises(UnprocessableEvent):
            await handler(event, session)
