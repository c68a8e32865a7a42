"""The user.* handlers against real SecantusDB, and the consumer through real RabbitMQ.

The handler tests run each handler in a transaction, as the consumer does, and look at the
stored documents: ordering by each field's own time, tombstones, idempotency. The last tests
run the service with its consumer on an exchange of their own and publish as auth does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import grpc
import pytest
from bson import ObjectId
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient
from taskmesh.common.v1 import common_pb2
from taskmesh.events.v1 import events_pb2
from taskmesh.users.v1 import users_pb2, users_pb2_grpc
from taskmesh_chassis.events import Event, EventTopology, UnprocessableEvent, encode_event
from taskmesh_chassis.events.envelope import CONTENT_TYPE, new_event
from taskmesh_chassis.events.topology import delete_service_queues
from taskmesh_chassis.testing import running_service
from taskmesh_users.consumer import IdentityEvents, ProfileNotCreatedYet
from taskmesh_users.repository import IdentityCopies
from taskmesh_users.settings import UsersSettings

from .conftest import SERVICE, as_user, new_user_id

pytestmark = pytest.mark.integration

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
REGISTERED = datetime(2026, 6, 1, 9, 0, 0, 250000, tzinfo=UTC)


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def auth_event(event_type: str, payload: Any, at: datetime) -> Event:
    """An event as auth publishes it, at `at`, about the payload's user."""
    return replace(
        new_event(event_type, source="taskmesh/auth", subject=payload.user_id, payload=payload),
        time=at,
    )


def registered(user_id: str, *, role: int = common_pb2.ROLE_USER, name: str = "Ada") -> Event:
    payload = events_pb2.UserRegistered(
        user_id=user_id,
        email="ada@example.org",
        name=name,
        role=role,
        registered_at=stamp(REGISTERED),
    )
    return auth_event("user.registered", payload, REGISTERED + timedelta(milliseconds=3))


def role_changed(user_id: str, role: int, at: datetime) -> Event:
    payload = events_pb2.UserRoleChanged(user_id=user_id, new_role=role, actor_id=new_user_id())
    return auth_event("user.role_changed", payload, at)


def deactivated(user_id: str, at: datetime) -> Event:
    return auth_event("user.deactivated", events_pb2.UserDeactivated(user_id=user_id), at)


def reactivated(user_id: str, at: datetime) -> Event:
    return auth_event("user.reactivated", events_pb2.UserReactivated(user_id=user_id), at)


def deleted(user_id: str, at: datetime) -> Event:
    payload = events_pb2.UserDeleted(user_id=user_id, email="ada@example.org")
    return auth_event("user.deleted", payload, at)


def later(seconds: float) -> datetime:
    return REGISTERED + timedelta(seconds=seconds)


class Consumer:
    """The service's handlers, each run in a transaction of its own as the consumer runs them."""

    def __init__(self, database: Any) -> None:
        self.database = database
        self._handlers = IdentityEvents(IdentityCopies(database)).handlers()

    async def handle(self, *events: Event) -> None:
        for event in events:
            async with (
                self.database.client.start_session() as session,
                await session.start_transaction(),
            ):
                await self._handlers[event.type](event, session)

    async def profile(self, user_id: str) -> dict[str, Any] | None:
        document: dict[str, Any] | None = await self.database.profiles.find_one(
            {"_id": ObjectId(user_id)}
        )
        return document


@pytest.fixture
def consumer(users_db: Any) -> Consumer:
    return Consumer(users_db)


# --- user.registered ------------------------------------------------------------------------


async def test_registered_creates_the_profile_with_auths_identity(consumer: Consumer) -> None:
    user_id = new_user_id()

    await consumer.handle(registered(user_id, role=common_pb2.ROLE_ADMIN, name=" Ada "))

    profile = await consumer.profile(user_id)
    assert profile is not None
    when = REGISTERED.replace(microsecond=250000)
    assert {key: profile[key] for key in ("email", "name", "role", "active", "bio")} == {
        "email": "ada@example.org",
        "name": "Ada",
        "role": "admin",
        "active": True,
        "bio": "",
    }
    assert (profile["timezone"], profile["email_notifications"]) == ("UTC", True)
    assert profile["created_at"] == profile["updated_at"] == when
    assert profile["identity_at"] == {"role": when, "active": when}
    assert profile["search"] == "ada\nada@example.org"


async def test_a_replayed_registered_leaves_the_profile_as_it_is(consumer: Consumer) -> None:
    user_id = new_user_id()
    await consumer.handle(registered(user_id))
    await consumer.database.profiles.update_one(
        {"_id": ObjectId(user_id)}, {"$set": {"name": "Countess", "bio": "Analyst"}}
    )
    before = await consumer.profile(user_id)

    await consumer.handle(registered(user_id, name="Ada"))

    assert await consumer.profile(user_id) == before


async def test_registered_after_deleted_does_not_bring_the_profile_back(
    consumer: Consumer,
) -> None:
    user_id = new_user_id()
    await consumer.handle(registered(user_id), deleted(user_id, later(5)))

    await consumer.handle(registered(user_id))

    assert await consumer.profile(user_id) is None


def valid_registration(**fields: Any) -> events_pb2.UserRegistered:
    values: dict[str, Any] = {
        "user_id": new_user_id(),
        "email": "ada@example.org",
        "name": "Ada",
        "role": common_pb2.ROLE_USER,
        "registered_at": stamp(REGISTERED),
        **fields,
    }
    return events_pb2.UserRegistered(**{k: v for k, v in values.items() if v is not None})


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(valid_registration(user_id="nope"), id="malformed-id"),
        pytest.param(valid_registration(registered_at=None), id="no-registered-at"),
        pytest.param(valid_registration(email=None), id="no-email"),
        pytest.param(valid_registration(name=" "), id="blank-name"),
        pytest.param(valid_registration(role=common_pb2.ROLE_UNSPECIFIED), id="no-role"),
    ],
)
async def test_a_registered_event_that_can_never_apply_is_unprocessable(
    consumer: Consumer, payload: events_pb2.UserRegistered
) -> None:
    with pytest.raises(UnprocessableEvent):
        await consumer.handle(auth_event("user.registered", payload, REGISTERED))
    assert await consumer.database.profiles.count_documents({}) == 0


# --- role and active flag -------------------------------------------------------------------


async def test_a_newer_role_change_is_applied_and_moves_updated_at(consumer: Consumer) -> None:
    user_id = new_user_id()
    await consumer.handle(registered(user_id))

    await consumer.handle(role_changed(user_id, common_pb2.ROLE_ADMIN, later(10)))

    profile = await consumer.profile(user_id)
    assert profile is not None
    assert (profile["role"], profile["identity_at"]["role"]) == ("admin", later(10))
    assert profile["updated_at"] == later(10)


async def test_an_older_role_change_arriving_late_does_not_undo_a_newer_one(
    consumer: Consumer,
) -> None:
    user_id = new_user_id()
    await consumer.handle(
        registered(user_id),
        role_changed(user_id, common_pb2.ROLE_USER, later(20)),
        role_changed(user_id, common_pb2.ROLE_ADMIN, later(10)),
    )

    profile = await consumer.profile(user_id)
    assert profile is not None
    assert (profile["role"], profile["identity_at"]["role"]) == ("user", later(20))


async def test_activations_are_ordered_by_their_own_time(consumer: Consumer) -> None:
    user_id = new_user_id()
    await consumer.handle(
        registered(user_id),
        deactivated(user_id, later(30)),
        reactivated(user_id, later(10)),
    )

    profile = await consumer.profile(user_id)
    assert profile is not None
    assert (profile["active"], profile["identity_at"]["active"]) == (False, later(30))


async def test_role_and_active_flag_are_ordered_independently(consumer: Consumer) -> None:
    # A deactivation retried after a newer role change must still be applied.
    user_id = new_user_id()
    await consumer.handle(
        registered(user_id),
        role_changed(user_id, common_pb2.ROLE_ADMIN, later(20)),
        deactivated(user_id, later(10)),
    )

    profile = await consumer.profile(user_id)
    assert profile is not None
    assert (profile["role"], profile["active"]) == ("admin", False)
    assert profile["updated_at"] == later(20)


async def test_a_replayed_identity_event_changes_nothing(consumer: Consumer) -> None:
    user_id = new_user_id()
    event = deactivated(user_id, later(10))
    await consumer.handle(registered(user_id), event)
    before = await consumer.profile(user_id)

    await consumer.handle(event)

    assert await consumer.profile(user_id) == before


@pytest.mark.parametrize(
    "make",
    [
        lambda user_id: role_changed(user_id, common_pb2.ROLE_ADMIN, later(1)),
        lambda user_id: deactivated(user_id, later(1)),
        lambda user_id: reactivated(user_id, later(1)),
    ],
)
async def test_an_identity_event_before_its_registration_fails_to_be_retried(
    consumer: Consumer, make: Any
) -> None:
    user_id = new_user_id()

    with pytest.raises(ProfileNotCreatedYet):
        await consumer.handle(make(user_id))

    assert await consumer.profile(user_id) is None


async def test_an_identity_event_of_a_deleted_user_does_nothing(consumer: Consumer) -> None:
    user_id = new_user_id()
    await consumer.handle(registered(user_id), deleted(user_id, later(5)))

    await consumer.handle(deactivated(user_id, later(9)))

    assert await consumer.profile(user_id) is None


async def test_a_role_change_to_no_known_role_is_unprocessable(consumer: Consumer) -> None:
    user_id = new_user_id()
    await consumer.handle(registered(user_id))

    with pytest.raises(UnprocessableEvent):
        await consumer.handle(role_changed(user_id, common_pb2.ROLE_UNSPECIFIED, later(1)))


# --- user.deleted ---------------------------------------------------------------------------


async def test_deleted_removes_the_profile_and_keeps_a_tombstone_once(consumer: Consumer) -> None:
    user_id = new_user_id()
    await consumer.handle(registered(user_id), deleted(user_id, later(5)))

    await consumer.handle(deleted(user_id, later(9)))

    assert await consumer.profile(user_id) is None
    tombstones = await consumer.database.deleted_users.find({}).to_list()
    assert tombstones == [{"_id": ObjectId(user_id), "deleted_at": later(5)}]


# --- through RabbitMQ -----------------------------------------------------------------------


@pytest.fixture
async def exchange() -> AsyncIterator[str]:
    """An exchange of the test's own; the users queues on it are deleted afterwards."""
    name = f"test.users.{uuid.uuid4().hex[:10]}"
    yield name
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        settings = UsersSettings(events_exchange=name, events_retry_delays_s=(0.2, 0.5))
        await delete_service_queues(
            channel, settings.event_topology, "users", settings.retry_policy
        )
        await channel.exchange_delete(name)


@pytest.fixture
def broker_settings(
    secantus_url: str, free_port: int, exchange: str, dead_amqp_url: str
) -> UsersSettings:
    return UsersSettings(
        grpc_port=free_port,
        metrics_port=0,
        mongodb_url=secantus_url,
        mongodb_database_prefix=f"test_{uuid.uuid4().hex[:12]}_",
        auth_grpc_target="127.0.0.1:1",
        amqp_url=AMQP_URL,
        events_exchange=exchange,
        events_retry_delays_s=(0.2, 0.5),
        shutdown_grace_s=1.0,
    )


async def wait_for_queue(topology: EventTopology) -> None:
    """Wait until the consumer declared its queue: events published before it are not kept."""
    name = topology.queues_of("users").main
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


async def get_user(stub: Any, user_id: str) -> users_pb2.Profile | grpc.StatusCode:
    try:
        profile: users_pb2.Profile = await stub.GetUser(
            users_pb2.GetUserRequest(user_id=user_id),
            metadata=as_user(new_user_id(), "admin"),
            timeout=5,
        )
    except grpc.aio.AioRpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return profile


async def eventually(check: Any, timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def test_the_service_consumes_auths_events_retrying_what_came_too_early(
    broker_settings: UsersSettings,
) -> None:
    user_id = new_user_id()
    topology = broker_settings.event_topology
    async with running_service(SERVICE, broker_settings) as channel:
        stub = users_pb2_grpc.UsersServiceStub(channel)
        await wait_for_queue(topology)

        # The role change first: it finds no profile, fails, and is applied on its retry.
        await publish(topology, role_changed(user_id, common_pb2.ROLE_ADMIN, later(10)))
        await publish(topology, registered(user_id))

        async def promoted() -> bool:
            profile = await get_user(stub, user_id)
            return isinstance(profile, users_pb2.Profile) and profile.role == common_pb2.ROLE_ADMIN

        await eventually(promoted)

        await publish(topology, deleted(user_id, later(20)))

        async def gone() -> bool:
            return await get_user(stub, user_id) == grpc.StatusCode.NOT_FOUND

        await eventually(gone)

        # A replay of the registration, processed after the deletion, brings nothing back;
        # nor does a late CreateProfile (auth, unreachable here, is not even asked).
        replay = registered(user_id)
        await publish(topology, replay)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            broker_settings.mongodb_url.get_secret_value()
        )
        database = client[broker_settings.mongodb_database]

        async def replay_processed() -> bool:
            return await database.processed_events.find_one({"_id": replay.id}) is not None

        try:
            await eventually(replay_processed)
        finally:
            await client.close()
        create = stub.CreateProfile(
            users_pb2.CreateProfileRequest(name="Ada"), metadata=as_user(user_id), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await create

        assert await get_user(stub, user_id) == grpc.StatusCode.NOT_FOUND
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
