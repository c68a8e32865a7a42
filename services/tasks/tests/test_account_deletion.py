"""Account deletion in the tasks service, against real SecantusDB, Redis and RabbitMQ.

`user.deleted` is published to an exchange of the test's own; the service consumes it from
its durable queue, records a purge job and carries it out in batches of two.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import grpc
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect
from redis.asyncio import Redis
from taskmesh.events.v1 import events_pb2
from taskmesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from taskmesh_chassis.cache_keys import task_list_generation_key
from taskmesh_chassis.events import Outbox, UnprocessableEvent, decode_event, encode_event
from taskmesh_chassis.events.envelope import CONTENT_TYPE, new_event
from taskmesh_chassis.events.topology import declare_exchange, delete_service_queues
from taskmesh_chassis.identity import StaticJwksProvider
from taskmesh_chassis.mongo import ensure_indexes
from taskmesh_chassis.testing import CapturedLogs, capture_logs, running_service
from taskmesh_tasks.domain import PurgeJob
from taskmesh_tasks.events import EVENT_SOURCE
from taskmesh_tasks.main import tasks_service
from taskmesh_tasks.purge import UserPurger, job_from
from taskmesh_tasks.repository import (
    INDEXES,
    GridFsAttachmentStore,
    MongoPurgeJobs,
    MongoTaskStore,
)
from taskmesh_tasks.settings import TasksSettings

from .conftest import KID, SIGNING_KEY, RunningAuth, mint_token

pytestmark = pytest.mark.integration

SERVICE = tasks_service(StaticJwksProvider({KID: SIGNING_KEY.public_key()}))
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/13"
BATCH = 2
# Two GridFS chunks (255 KiB each at most).
BIG_FILE = bytes(range(256)) * 1200

Database = Any


def new_user_id() -> str:
    return str(ObjectId())


def as_user(user_id: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {mint_token(user_id)}")]


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, what: str = "condition"
) -> None:
    """Wait until `check()` holds, polling; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
async def settings(
    secantus_url: str, free_port: int, fake_auth: RunningAuth
) -> AsyncIterator[TasksSettings]:
    settings = TasksSettings(
        grpc_port=free_port,
        metrics_port=0,
        mongodb_url=secantus_url,
        mongodb_database_prefix=f"test_{uuid.uuid4().hex[:12]}_",
        auth_grpc_target=fake_auth.target,
        amqp_url=AMQP_URL,
        redis_url=REDIS_URL,
        events_exchange=f"test.events.{uuid.uuid4().hex[:10]}",
        user_purge_batch=BATCH,
        user_purge_sweep_s=0.2,
        shutdown_grace_s=1.0,
    )
    yield settings
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await delete_service_queues(
            channel, settings.event_topology, "tasks", settings.retry_policy
        )
        await channel.exchange_delete(settings.events_exchange)


@pytest.fixture
async def database(settings: TasksSettings) -> AsyncIterator[Database]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value(), tz_aware=True
    )
    yield client[settings.mongodb_database]
    await client.close()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def logs() -> CapturedLogs:
    return capture_logs("tasks")


@dataclass
class World:
    """The deleted user D, the admin who deleted them, and users A, B, C with their tasks.

    D owns d_tasks: the first assigned to A with a two-chunk attachment, the second to D,
    the third with a small attachment. B owns b_tasks, all assigned to D, and one task
    assigned to A. C owns a task assigned to A, with an attachment.
    """

    deleted: str
    admin: str
    a: str
    b: str
    c: str
    d_tasks: list[str]
    b_tasks: list[str]
    untouched: list[str]


async def create(
    stub: tasks_pb2_grpc.TasksServiceStub, owner: str, assignee: str | None = None
) -> str:
    task_input = tasks_pb2.TaskInput(title="Write the report")
    if assignee is not None:
        task_input.assignee_id = assignee
    task = await stub.CreateTask(
        tasks_pb2.CreateTaskRequest(task=task_input), metadata=as_user(owner), timeout=5
    )
    task_id: str = task.id
    return task_id


async def attach(
    stub: tasks_pb2_grpc.TasksServiceStub, owner: str, task_id: str, content: bytes
) -> None:
    metadata = tasks_pb2.AttachmentUpload(
        task_id=task_id, filename="notes.bin", content_type="application/octet-stream"
    )
    requests = [tasks_pb2.UploadAttachmentRequest(metadata=metadata)]
    for start in range(0, len(content), 100_000):
        requests.append(tasks_pb2.UploadAttachmentRequest(chunk=content[start : start + 100_000]))
    await stub.UploadAttachment(iter(requests), metadata=as_user(owner), timeout=10)


async def build_world(channel: grpc.aio.Channel, fake_auth: RunningAuth) -> World:
    deleted, admin, a, b, c = (new_user_id() for _ in range(5))
    for user in (deleted, a, b, c):
        fake_auth.fake.users[user] = True
    stub = tasks_pb2_grpc.TasksServiceStub(channel)
    d_tasks = [
        await create(stub, deleted, a),
        await create(stub, deleted, deleted),
        *[await create(stub, deleted) for _ in range(3)],
    ]
    await attach(stub, deleted, d_tasks[0], BIG_FILE)
    await attach(stub, deleted, d_tasks[2], b"small")
    b_tasks = [await create(stub, b, deleted) for _ in range(4)]
    untouched = [await create(stub, b, a), await create(stub, c, a)]
    await attach(stub, c, untouched[1], b"keep me")
    return World(deleted, admin, a, b, c, d_tasks, b_tasks, untouched)


async def publish_user_deleted(settings: TasksSettings, user_id: str, actor_id: str) -> str:
    """Publish `user.deleted` to the exchange as auth's relay would; return the event id."""
    event = new_event(
        "user.deleted",
        source="taskmesh/auth",
        subject=user_id,
        payload=events_pb2.UserDeleted(user_id=user_id, email="d@example.com", actor_id=actor_id),
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


async def consumer_started(logs: CapturedLogs, times: int = 1) -> None:
    async def started() -> bool:
        return len(logs.events("events.consumer_started")) >= times

    await eventually(started, what="the consumer to start")


async def purge_done(database: Database, event_id: str, user_id: str) -> None:
    async def done() -> bool:
        processed = await database.processed_events.count_documents({"_id": event_id})
        pending = await database.user_purges.count_documents({"_id": user_id})
        return processed == 1 and pending == 0

    await eventually(done, what="the purge to finish")


@dataclass
class Purged:
    world: World
    event_id: str


@pytest.fixture
async def purged(
    settings: TasksSettings, database: Database, fake_auth: RunningAuth, logs: CapturedLogs
) -> Purged:
    """The world built, then D deleted by the admin, the purge complete."""
    async with running_service(SERVICE, settings) as channel:
        world = await build_world(channel, fake_auth)
        await consumer_started(logs)
        event_id = await publish_user_deleted(settings, world.deleted, world.admin)
        await purge_done(database, event_id, world.deleted)
    return Purged(world, event_id)


async def outbox_events(database: Database, event_type: str) -> list[Any]:
    records = await database.outbox.find({"type": event_type}).to_list()
    return [decode_event(bytes(record["body"])) for record in records]


async def tasks_by_id(database: Database, task_ids: Collection[str]) -> dict[str, Any]:
    found = {}
    for task_id in task_ids:
        document = await database.tasks.find_one({"_id": ObjectId(task_id)})
        if document is not None:
            found[task_id] = document
    return found


# --- the purge ---------------------------------------------------------------------------


async def test_the_deleted_users_tasks_are_deleted_with_an_event_each(
    purged: Purged, database: Database
) -> None:
    world = purged.world

    deleted_events = await outbox_events(database, "task.deleted")

    assert await database.tasks.count_documents({"owner_id": world.deleted}) == 0
    assert sorted(event.subject for event in deleted_events) == sorted(world.d_tasks)
    payloads = {event.subject: event.payload for event in deleted_events}
    assert payloads[world.d_tasks[0]] == events_pb2.TaskDeleted(
        task_id=world.d_tasks[0], owner_id=world.deleted, assignee_id=world.a, actor_id=world.admin
    )
    assert payloads[world.d_tasks[3]].assignee_id == ""


async def test_the_deleted_users_attachments_are_gone_files_and_chunks(
    purged: Purged, database: Database
) -> None:
    world = purged.world
    kept = await database["attachments.files"].find().to_list()

    assert [str(document["metadata"]["task_id"]) for document in kept] == [world.untouched[1]]
    assert await database["attachments.chunks"].count_documents({}) == 1
    chunk = await database["attachments.chunks"].find_one()
    assert chunk["files_id"] == kept[0]["_id"]


async def test_others_tasks_are_unassigned_with_a_new_version_and_an_event(
    purged: Purged, database: Database
) -> None:
    world = purged.world

    stored = await tasks_by_id(database, world.b_tasks)
    updated = {event.subject: event for event in await outbox_events(database, "task.updated")}

    assert [(task["assignee_id"], task["version"]) for task in stored.values()] == [(None, 2)] * 4
    assert all(task["updated_at"] > task["created_at"] for task in stored.values())
    assert sorted(updated) == sorted(world.b_tasks)
    payload = updated[world.b_tasks[0]].payload
    assert list(payload.changed_fields) == ["assignee_id"]
    assert (payload.actor_id, payload.task.assignee_id, payload.task.version) == (
        world.admin,
        "",
        2,
    )
    assert payload.task.owner_id == world.b


async def test_third_parties_tasks_are_untouched(purged: Purged, database: Database) -> None:
    world = purged.world

    stored = await tasks_by_id(database, world.untouched)

    assert [(task["assignee_id"], task["version"]) for task in stored.values()] == [
        (world.a, 1),
        (world.a, 1),
    ]


async def test_the_cache_generation_of_every_other_affected_user_is_bumped(
    purged: Purged, redis: Redis
) -> None:
    world = purged.world

    generations = {
        name: await redis.get(task_list_generation_key(user))
        for name, user in (("a", world.a), ("b", world.b), ("c", world.c))
    }

    assert int(generations["a"] or 0) >= 1
    assert int(generations["b"] or 0) >= 1
    assert generations["c"] is None
    assert await redis.ttl(task_list_generation_key(world.b)) > 3600


async def test_the_purge_logs_its_start_and_what_it_did(purged: Purged, logs: CapturedLogs) -> None:
    world = purged.world

    (started,) = logs.events("tasks.user_purge_started")
    (finished,) = logs.events("tasks.user_purge_finished")

    assert (started["user_id"], started["actor_id"]) == (world.deleted, world.admin)
    assert {
        name: finished[name]
        for name in (
            "user_id",
            "tasks_deleted",
            "attachments_deleted",
            "tasks_unassigned",
            "users_invalidated",
            "invalidation_failures",
        )
    } == {
        "user_id": world.deleted,
        "tasks_deleted": 5,
        "attachments_deleted": 2,
        "tasks_unassigned": 4,
        "users_invalidated": 2,
        "invalidation_failures": 0,
    }


async def test_user_deleted_again_changes_nothing_more(
    purged: Purged, settings: TasksSettings, database: Database, logs: CapturedLogs
) -> None:
    world = purged.world
    tasks_before = await database.tasks.find().sort("_id").to_list()
    outbox_before = await database.outbox.count_documents({})

    async with running_service(SERVICE, settings):
        await consumer_started(logs, times=2)
        again = await publish_user_deleted(settings, world.deleted, world.admin)
        await purge_done(database, again, world.deleted)

    assert await database.tasks.find().sort("_id").to_list() == tasks_before
    assert await database.outbox.count_documents({}) == outbox_before
    assert logs.events("tasks.user_purge_finished")[-1]["tasks_deleted"] == 0


async def test_user_deleted_published_while_the_service_was_down_is_applied_at_its_start(
    settings: TasksSettings, database: Database, fake_auth: RunningAuth, logs: CapturedLogs
) -> None:
    async with running_service(SERVICE, settings) as channel:
        world = await build_world(channel, fake_auth)
        await consumer_started(logs)

    event_id = await publish_user_deleted(settings, world.deleted, world.admin)
    assert await database.processed_events.count_documents({"_id": event_id}) == 0

    async with running_service(SERVICE, settings):
        await purge_done(database, event_id, world.deleted)

    assert await database.tasks.count_documents({"owner_id": world.deleted}) == 0
    assert await database.tasks.count_documents({"assignee_id": world.deleted}) == 0


class SimulatedCrash(BaseException):
    """Kills a purge where it is, as a dying process would: nothing is handed back."""


class CrashAfterFirstBatch(MongoPurgeJobs):
    """The job store of an instance that dies right after its first batch committed."""

    async def renew(self, user_id: str, holder: str, until: datetime) -> bool:
        raise SimulatedCrash()


class KeepLists:
    async def invalidate(self, user_ids: Collection[str]) -> bool:
        return True


async def test_a_job_left_half_done_by_a_crash_is_finished_once_its_lease_ran_out(
    settings: TasksSettings, database: Database, fake_auth: RunningAuth
) -> None:
    async with running_service(SERVICE, settings) as channel:
        world = await build_world(channel, fake_auth)
    jobs = CrashAfterFirstBatch(database)
    async with database.client.start_session() as session, await session.start_transaction():
        await jobs.record(PurgeJob(world.deleted, world.admin, datetime.now(UTC)), session)
    crashing = UserPurger(
        MongoTaskStore(database, Outbox(database, source=EVENT_SOURCE)),
        GridFsAttachmentStore(database),
        jobs,
        KeepLists(),
        batch_size=BATCH,
        sweep_interval_s=60,
        holder="crashed-instance",
    )
    with pytest.raises(SimulatedCrash):
        await crashing.purge_claimable()

    async with running_service(SERVICE, settings):
        # Several sweeps pass while the dead instance's lease still holds the job.
        await asyncio.sleep(5 * settings.user_purge_sweep_s)
        while_leased = await database.tasks.count_documents({"owner_id": world.deleted})
        await database.user_purges.update_one(
            {"_id": world.deleted},
            {"$set": {"claimed_until": datetime.now(UTC) - timedelta(seconds=1)}},
        )
        await eventually(lambda: _job_gone(database, world.deleted), what="the job to finish")

    assert while_leased == len(world.d_tasks) - BATCH
    assert await database.tasks.count_documents({"owner_id": world.deleted}) == 0
    assert await database.tasks.count_documents({"assignee_id": world.deleted}) == 0
    deleted_subjects = [event.subject for event in await outbox_events(database, "task.deleted")]
    assert sorted(deleted_subjects) == sorted(world.d_tasks)


class AttachmentsFailingOnce(GridFsAttachmentStore):
    """GridFS whose first deletion fails, as a lost connection would make it."""

    failed = False

    async def delete_all(self, task_id: str) -> int:
        if not self.failed:
            self.failed = True
            raise AutoReconnect("connection lost")
        return await super().delete_all(task_id)


async def test_a_failed_job_is_released_and_finished_after_the_sweep_interval(
    settings: TasksSettings, database: Database, fake_auth: RunningAuth, logs: CapturedLogs
) -> None:
    async with running_service(SERVICE, settings) as channel:
        world = await build_world(channel, fake_auth)
    jobs = MongoPurgeJobs(database)
    async with database.client.start_session() as session, await session.start_transaction():
        await jobs.record(PurgeJob(world.deleted, world.admin, datetime.now(UTC)), session)
    purger = UserPurger(
        MongoTaskStore(database, Outbox(database, source=EVENT_SOURCE)),
        AttachmentsFailingOnce(database),
        jobs,
        KeepLists(),
        batch_size=BATCH,
        sweep_interval_s=0.2,
    )

    first = await purger.purge_claimable()
    released = await database.user_purges.find_one({"_id": world.deleted})
    too_soon = await purger.purge_claimable()
    await asyncio.sleep(0.3)
    later = await purger.purge_claimable()

    assert (first, too_soon, later) == (0, 0, 1)
    assert released is not None
    assert released["claimed_by"] is None
    (failure,) = logs.events("tasks.user_purge_failed")
    assert (failure["user_id"], failure["error"]) == (world.deleted, "connection lost")
    assert await database.tasks.count_documents({"owner_id": world.deleted}) == 0


async def _job_gone(database: Database, user_id: str) -> bool:
    return await database.user_purges.count_documents({"_id": user_id}) == 0


def test_user_deleted_without_a_valid_user_id_is_unprocessable() -> None:
    event = new_event(
        "user.deleted",
        source="taskmesh/auth",
        subject="nobody",
        payload=events_pb2.UserDeleted(user_id="{'$ne': 1}", actor_id=new_user_id()),
    )

    with pytest.raises(UnprocessableEvent):
        job_from(event)


# --- leases and indexes ------------------------------------------------------------------


@pytest.fixture
async def jobs(database: Database) -> MongoPurgeJobs:
    await ensure_indexes(database, INDEXES)
    return MongoPurgeJobs(database)


async def record_job(database: Database, jobs: MongoPurgeJobs, user_id: str) -> None:
    async with database.client.start_session() as session, await session.start_transaction():
        await jobs.record(PurgeJob(user_id, new_user_id(), datetime.now(UTC)), session)


async def test_recording_a_job_twice_keeps_the_first(
    database: Database, jobs: MongoPurgeJobs
) -> None:
    user = new_user_id()
    await record_job(database, jobs, user)
    first = await database.user_purges.find_one({"_id": user})

    await record_job(database, jobs, user)

    assert await database.user_purges.find({"_id": user}).to_list() == [first]


async def test_only_one_of_two_instances_claims_a_job(
    database: Database, jobs: MongoPurgeJobs
) -> None:
    user = new_user_id()
    await record_job(database, jobs, user)
    now = datetime.now(UTC)

    claims = await asyncio.gather(
        *(jobs.claim(user, holder, now, now + timedelta(seconds=60)) for holder in ("x", "y"))
    )

    assert sorted(claims) == [False, True]
    assert await jobs.claimable(datetime.now(UTC), 10) == []


async def test_a_job_whose_lease_ran_out_is_claimed_by_another_instance(
    database: Database, jobs: MongoPurgeJobs
) -> None:
    user = new_user_id()
    await record_job(database, jobs, user)
    now = datetime.now(UTC)
    assert await jobs.claim(user, "crashed", now, now + timedelta(milliseconds=50))

    later = now + timedelta(milliseconds=100)
    taken_over = await jobs.claim(user, "survivor", later, later + timedelta(seconds=60))

    assert taken_over
    assert not await jobs.renew(user, "crashed", later + timedelta(seconds=60))


async def test_batch_reads_and_the_job_query_are_served_by_indexes(
    database: Database, jobs: MongoPurgeJobs
) -> None:
    store = MongoTaskStore(database, Outbox(database, source=EVENT_SOURCE))
    user = new_user_id()
    await database.tasks.insert_many(
        [{"owner_id": new_user_id(), "assignee_id": user} for _ in range(50)]
        + [{"owner_id": user, "assignee_id": None} for _ in range(50)]
    )

    plans = [
        *await store.explain_batches(user, BATCH),
        await jobs.explain_claimable(datetime.now(UTC), 10),
    ]

    winning = [json.dumps(plan["queryPlanner"]["winningPlan"], default=str) for plan in plans]
    assert all("IXSCAN" in plan and "COLLSCAN" not in plan for plan in winning), winning
    assert ['"owner_id"' in winning[0], '"assignee_id"' in winning[1]] == [True, True]
    assert '"claimed_until"' in winning[2]
