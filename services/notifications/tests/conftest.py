"""Fixtures of the notifications service's tests: SecantusDB, RabbitMQ, real tokens, events.

Callers' tokens are real EdDSA JWTs signed by a key the service is composed to trust. Tests
that run the service against RabbitMQ get an exchange of their own (deleted afterwards with
the service's queues), so no event reaches, or comes from, another suite. SMTP points at a
port nothing listens on: what these tests look at is the queue of delivery records
(`emails`), which the mail package's own tests follow to the wire.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aio_pika
import jwt
import pytest
from bson import ObjectId
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient
from taskmesh.common.v1 import common_pb2
from taskmesh.events.v1 import events_pb2
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_chassis.events import Event, Outbox, encode_event
from taskmesh_chassis.events.envelope import CONTENT_TYPE, new_event
from taskmesh_chassis.events.topology import declare_exchange, delete_service_queues
from taskmesh_chassis.identity import StaticJwksProvider
from taskmesh_chassis.mongo import create_mongo_client, ensure_indexes
from taskmesh_chassis.testing import find_free_port
from taskmesh_notifications.consumer import NotificationEvents
from taskmesh_notifications.events import EVENT_SOURCE
from taskmesh_notifications.mail import EMAIL_INDEXES, EmailQueue
from taskmesh_notifications.main import notifications_service
from taskmesh_notifications.notifier import Notifier
from taskmesh_notifications.repository import (
    INDEXES,
    DueTasks,
    MongoNotificationStore,
    RecipientCopies,
    ensure_collections,
)
from taskmesh_notifications.settings import NotificationsSettings

SIGNING_KEY = Ed25519PrivateKey.generate()
KID = "notifications-test-key"
SERVICE = notifications_service(StaticJwksProvider({KID: SIGNING_KEY.public_key()}))
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
# Short waits before retries, so a test sees an event's last attempt within seconds.
RETRY_DELAYS_S = (0.2, 0.3, 1.0)

Database = Any
Metadata = list[tuple[str, str]]


def new_id() -> str:
    return str(ObjectId())


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


def as_user(user_id: str) -> Metadata:
    """gRPC metadata presenting a signed-in user."""
    return [("authorization", f"Bearer {mint_token(user_id)}")]


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Wait until `check()` holds, polling; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def base_settings(secantus_url: str, grpc_port: int, **overrides: Any) -> NotificationsSettings:
    """Settings on a database of their own, SMTP on a dead port, RabbitMQ as given."""
    values: dict[str, Any] = {
        "grpc_port": grpc_port,
        "metrics_port": 0,
        "mongodb_url": secantus_url,
        "mongodb_database_prefix": f"test_{uuid.uuid4().hex[:12]}_",
        "amqp_url": AMQP_URL,
        "smtp_url": f"smtp://127.0.0.1:{find_free_port()}",
        "email_retry_delays_s": (600.0,),
        "events_retry_delays_s": RETRY_DELAYS_S,
        "reminder_scan_interval_s": 1.0,
        "shutdown_grace_s": 1.0,
    }
    values.update(overrides)
    return NotificationsSettings(**values)


SettingsFactory = Callable[..., NotificationsSettings]


@pytest.fixture
async def settings_factory(secantus_url: str) -> AsyncIterator[SettingsFactory]:
    """Makes settings with an exchange of the test's own on the local RabbitMQ (unless given).

    Settings made with another's `mongodb_database_prefix` and `events_exchange` are a second
    instance of the same service. Every exchange made is deleted afterwards, with the
    service's queues.
    """
    made: dict[str, NotificationsSettings] = {}

    def make(**overrides: Any) -> NotificationsSettings:
        overrides.setdefault("events_exchange", f"test.events.{uuid.uuid4().hex[:10]}")
        settings = base_settings(secantus_url, find_free_port(), **overrides)
        made.setdefault(settings.events_exchange, settings)
        return settings

    yield make
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for settings in made.values():
            await delete_service_queues(
                channel, settings.event_topology, "notifications", settings.retry_policy
            )
            await channel.exchange_delete(settings.events_exchange)


@pytest.fixture
def settings(settings_factory: SettingsFactory) -> NotificationsSettings:
    """The service's settings with an exchange of the test's own."""
    return settings_factory()


@asynccontextmanager
async def open_database(settings: NotificationsSettings) -> AsyncIterator[Database]:
    """The database the service with these settings uses."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value(), tz_aware=True
    )
    try:
        yield client[settings.mongodb_database]
    finally:
        await client.close()


@pytest.fixture
async def database(settings: NotificationsSettings) -> AsyncIterator[Database]:
    """The service's database (whatever the service made of it)."""
    async with open_database(settings) as database:
        yield database


@pytest.fixture
async def laid_out_db(secantus_url: str) -> AsyncIterator[Database]:
    """A fresh database laid out as the service lays out its own, for tests without it."""
    client: AsyncMongoClient[dict[str, Any]] = create_mongo_client(
        secantus_url, appname="taskmesh-notifications-tests"
    )
    database = client[f"test_notifications_{uuid.uuid4().hex[:12]}"]
    await ensure_indexes(database, INDEXES)
    await ensure_indexes(database, EMAIL_INDEXES)
    await ensure_indexes(database, Outbox(database, source=EVENT_SOURCE).indexes())
    await ensure_collections(database)
    yield database
    await client.close()


# --- events ------------------------------------------------------------------------------


def notifier_over(database: Database) -> Notifier:
    """The service's notifier over the database, with the real email queue."""
    return Notifier(
        MongoNotificationStore(database),
        Outbox(database, source=EVENT_SOURCE),
        EmailQueue(database),
    )


def handlers_over(database: Database) -> NotificationEvents:
    """The service's handlers over the database, with no wait for missing copies."""
    return NotificationEvents(
        MongoNotificationStore(database),
        RecipientCopies(database),
        DueTasks(database),
        notifier_over(database),
        recipient_wait_s=0,
    )


async def handle(database: Database, *events: Event) -> None:
    """Apply each event in a transaction of its own, as the consumer does."""
    handlers = handlers_over(database).handlers()
    for event in events:
        async with (
            database.client.start_session() as session,
            await session.start_transaction(),
        ):
            await handlers[event.type](event, session)


async def publish(settings: NotificationsSettings, *events: Event) -> None:
    """Publish events to the test's exchange as a relay would (persistent, confirmed)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_exchange(channel, settings.event_topology)
        for event in events:
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


def event(event_type: str, subject: str, payload: Message, *, source: str) -> Event:
    return new_event(event_type, source=source, subject=subject, payload=payload)


def user_registered(user_id: str, email: str, name: str = "Ada") -> Event:
    payload = events_pb2.UserRegistered(
        user_id=user_id,
        email=email,
        name=name,
        role=common_pb2.ROLE_USER,
        registered_at=timestamp(datetime.now(UTC)),
    )
    return event("user.registered", user_id, payload, source="taskmesh/auth")


def profile_updated(
    user_id: str,
    email: str,
    *,
    name: str = "Ada",
    timezone: str = "UTC",
    email_notifications: bool = True,
) -> Event:
    payload = events_pb2.UserProfileUpdated(
        user_id=user_id,
        email=email,
        name=name,
        timezone=timezone,
        email_notifications=email_notifications,
    )
    return event("user.profile_updated", user_id, payload, source="taskmesh/users")


def password_reset_requested(user_id: str, email: str, token: str) -> Event:
    payload = events_pb2.UserPasswordResetRequested(
        user_id=user_id,
        email=email,
        reset_token=token,
        expires_at=timestamp(datetime(2026, 11, 28, 14, 0, tzinfo=UTC)),
    )
    return event("user.password_reset_requested", user_id, payload, source="taskmesh/auth")


def user_deleted(user_id: str) -> Event:
    payload = events_pb2.UserDeleted(user_id=user_id, email="gone@example.com", actor_id=new_id())
    return event("user.deleted", user_id, payload, source="taskmesh/auth")


def task_message(
    owner_id: str,
    *,
    task_id: str | None = None,
    assignee_id: str | None = None,
    title: str = "Write the report",
    due_at: datetime | None = None,
    done: bool = False,
    version: int = 1,
) -> tasks_pb2.Task:
    """A Task as the tasks service publishes it."""
    now = timestamp(datetime.now(UTC))
    message = tasks_pb2.Task(
        id=task_id or new_id(),
        owner_id=owner_id,
        title=title,
        status=tasks_pb2.STATUS_DONE if done else tasks_pb2.STATUS_TODO,
        priority=tasks_pb2.PRIORITY_MEDIUM,
        created_at=now,
        updated_at=now,
        version=version,
    )
    if assignee_id is not None:
        message.assignee_id = assignee_id
    if due_at is not None:
        message.due_at.CopyFrom(timestamp(due_at))
    if done:
        message.completed_at.CopyFrom(now)
    return message


def task_created(task: tasks_pb2.Task, actor_id: str) -> Event:
    payload = events_pb2.TaskCreated(task=task, actor_id=actor_id)
    return event("task.created", task.id, payload, source="taskmesh/tasks")


def task_updated(task: tasks_pb2.Task, actor_id: str, changed: list[str]) -> Event:
    payload = events_pb2.TaskUpdated(task=task, changed_fields=changed, actor_id=actor_id)
    return event("task.updated", task.id, payload, source="taskmesh/tasks")


def task_assigned(task: tasks_pb2.Task, actor_id: str, previous: str = "") -> Event:
    payload = events_pb2.TaskAssigned(task=task, previous_assignee_id=previous, actor_id=actor_id)
    return event("task.assigned", task.id, payload, source="taskmesh/tasks")


def task_completed(task: tasks_pb2.Task, actor_id: str) -> Event:
    payload = events_pb2.TaskCompleted(task=task, actor_id=actor_id)
    return event("task.completed", task.id, payload, source="taskmesh/tasks")


def task_deleted(task: tasks_pb2.Task, actor_id: str) -> Event:
    payload = events_pb2.TaskDeleted(
        task_id=task.id,
        owner_id=task.owner_id,
        assignee_id=task.assignee_id if task.HasField("assignee_id") else "",
        actor_id=actor_id,
    )
    return event("task.deleted", task.id, payload, source="taskmesh/tasks")
