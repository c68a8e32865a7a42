"""Latency of a user's first task page and of an update, as the collection grows.

Starts SecantusDB in a process of its own on a throw-away directory and serves the tasks
service in this process (gRPC on a free port, real EdDSA tokens), then prints p50/p95 of:
a first page of 20 sorted `-created_at` and `due_at`, and an UpdateTask (a title change),

(a) for a user with 100 tasks while the collection holds 1,000 / 100,000 (/ 1,000,000 with
    --million) tasks of other users: this should stay flat;
(b) for one user holding 100 / 10,000 / 100,000 tasks,

with the explain() winning plan of each first page. Tasks are bulk-loaded with insert_many
in batches; for large loads the list indexes are dropped and rebuilt after it (much faster
on SecantusDB than maintaining them per insert); the load times are printed. Asserts nothing.
Figures through the gateway are measured elsewhere.

    .venv/bin/python bench/tasks_list.py [--samples 40] [--million]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import jwt
from bson import ObjectId
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.field_mask_pb2 import FieldMask
from pymongo import AsyncMongoClient
from secantus_process import free_port, start_secantus
from taskmesh.common.v1 import common_pb2
from taskmesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from taskmesh_chassis.events import Outbox
from taskmesh_chassis.identity import StaticJwksProvider
from taskmesh_chassis.logging import configure_logging
from taskmesh_chassis.mongo import ensure_indexes
from taskmesh_chassis.testing import running_service
from taskmesh_tasks.domain import Priority, Status, Task, TaskFields, Viewer
from taskmesh_tasks.listing import ListQuery, Scope, SortOrder
from taskmesh_tasks.main import tasks_service
from taskmesh_tasks.repository import INDEXES, TASKS, MongoTaskStore, task_document
from taskmesh_tasks.settings import TasksSettings

KID = "bench"
BATCH = 10_000
# Smaller loads keep the indexes: rebuilding them over the whole collection costs more.
REBUILD_INDEXES_FROM = 20_000
SORTS = {
    "-created_at": tasks_pb2.SORT_CREATED_AT_DESC,
    "due_at": tasks_pb2.SORT_DUE_AT_ASC,
}


def mint(key: Ed25519PrivateKey, user_id: str) -> str:
    now = time.time()
    claims = {
        "iss": "taskmesh",
        "aud": "taskmesh-api",
        "sub": user_id,
        "role": "user",
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
        "sid": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": KID, "typ": "at+jwt"})


def fake_task(owner_id: str, index: int, now: datetime) -> dict[str, Any]:
    due = now + timedelta(hours=index % 5000) if index % 3 else None
    task = Task(
        id=str(ObjectId()),
        owner_id=owner_id,
        fields=TaskFields(
            title=f"Task {index}",
            description="Something to do, described in a sentence or two.",
            status=random.choice(list(Status)),
            priority=random.choice(list(Priority)),
            due_at=due,
            tags=("bench",),
        ),
        created_at=now - timedelta(milliseconds=index),
        updated_at=now,
        completed_at=None,
        version=1,
    )
    return task_document(task)


async def load(
    database: Any, owners: Callable[[int], str], count: int, *, rebuild_indexes: bool = True
) -> float:
    """Insert `count` tasks (owner of the i-th: owners(i)); return the seconds it took.

    A large load drops the indexes and builds them again afterwards (faster), unless
    `rebuild_indexes` is False.
    """
    started = time.perf_counter()
    collection = database[TASKS]
    rebuild = rebuild_indexes and count >= REBUILD_INDEXES_FROM
    if rebuild:
        await collection.drop_indexes()
    now = datetime.now(UTC)
    for start in range(0, count, BATCH):
        documents = [fake_task(owners(i), i, now) for i in range(start, min(count, start + BATCH))]
        await collection.insert_many(documents, ordered=False)
    if rebuild:
        await ensure_indexes(database, INDEXES)
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {p50:8.2f} ms  p95 {p95:8.2f} ms"


async def timed(call: Callable[[], Awaitable[Any]], samples: int) -> str:
    """p50/p95 of `samples` calls after one warm-up, or how the first failing call failed."""
    results = []
    for attempt in range(samples + 1):
        started = time.perf_counter()
        try:
            await call()
        except grpc.aio.AioRpcError as error:
            elapsed = time.perf_counter() - started
            return f"failed: {error.code().name} after {elapsed:.1f} s ({error.details()})"
        if attempt:
            results.append((time.perf_counter() - started) * 1000)
    return percentiles(results)


def plan_summary(plan: dict[str, Any]) -> str:
    def chain(stage: dict[str, Any]) -> str:
        name = stage.get("stage", "?")
        if name == "IXSCAN":
            name += f"({stage.get('indexName')})"
        inner = stage.get("inputStage")
        return name if inner is None else f"{name} <- {chain(inner)}"

    winning = plan.get("queryPlanner", {}).get("winningPlan", {})
    stats = plan.get("executionStats", {})
    return (
        f"{chain(winning)}  keys={stats.get('totalKeysExamined')} "
        f"docs={stats.get('totalDocsExamined')}"
    )


async def measure(
    stub: tasks_pb2_grpc.TasksServiceStub,
    store: MongoTaskStore,
    user_id: str,
    token: str,
    task_ids: list[str],
    samples: int,
    label: str,
) -> None:
    metadata = [("authorization", f"Bearer {token}")]
    print(f"  {label}")
    for name, sort in SORTS.items():
        request = tasks_pb2.ListTasksRequest(page=common_pb2.PageRequest(limit=20), sort=sort)

        async def first_page(request: tasks_pb2.ListTasksRequest = request) -> None:
            await stub.ListTasks(request, metadata=metadata, timeout=120)

        print(f"    ListTasks first 20 {name:<12} {await timed(first_page, samples)}")
        query = ListQuery(Viewer(user_id), scope=Scope.OWNED, sort=SortOrder(name))
        for plan in await store.explain_page(query):
            print(f"      plan: {plan_summary(plan)}")

    async def update() -> None:
        request = tasks_pb2.UpdateTaskRequest(
            task_id=random.choice(task_ids),
            task=tasks_pb2.TaskInput(title=f"Renamed {uuid.uuid4().hex[:6]}"),
            update_mask=FieldMask(paths=["title"]),
        )
        await stub.UpdateTask(request, metadata=metadata, timeout=60)

    print(f"    UpdateTask (title)             {await timed(update, samples)}")


async def user_task_ids(database: Any, user_id: str, limit: int = 500) -> list[str]:
    cursor = database[TASKS].find({"owner_id": user_id}, {"_id": 1}).limit(limit)
    return [str(document["_id"]) async for document in cursor]


async def run(samples: int, million: bool) -> None:
    configure_logging("tasks", "CRITICAL", "json")
    key = Ed25519PrivateKey.generate()
    service = tasks_service(StaticJwksProvider({KID: key.public_key()}))
    with tempfile.TemporaryDirectory(prefix="tasks-bench-") as storage:
        process, mongo_url = start_secantus(storage)
        try:
            settings = TasksSettings(
                grpc_port=free_port(),
                metrics_port=0,
                mongodb_url=mongo_url,
                mongodb_database_prefix=f"bench_{uuid.uuid4().hex[:8]}_",
                amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/",
                auth_grpc_target=f"127.0.0.1:{free_port()}",
                shutdown_grace_s=1.0,
            )
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
            database = client[settings.mongodb_database]
            store = MongoTaskStore(database, Outbox(database, source="bench"))
            async with running_service(service, settings) as channel:
                stub = tasks_pb2_grpc.TasksServiceStub(channel)
                await scenario_others(database, store, stub, key, samples, million)
                await scenario_one_user(database, store, stub, key, samples)
            await client.close()
        finally:
            process.terminate()
            process.wait(timeout=30)


async def scenario_others(
    database: Any,
    store: MongoTaskStore,
    stub: tasks_pb2_grpc.TasksServiceStub,
    key: Ed25519PrivateKey,
    samples: int,
    million: bool,
) -> None:
    print("(a) a user with 100 tasks; the collection also holds other users' tasks")
    user_id = str(ObjectId())
    others = [str(ObjectId()) for _ in range(1000)]
    await load(database, lambda i: user_id, 100)
    loaded = 0
    sizes = [1_000, 100_000] + ([1_000_000] if million else [])
    per_task_s = 0.0
    for size in sizes:
        added = size - loaded
        seconds = await load(database, lambda i: others[i % len(others)], added)
        per_task_s = seconds / added
        loaded = size
        label = f"others' tasks: {size:>9,}  (loaded {added:,} more in {seconds:.1f} s)"
        task_ids = await user_task_ids(database, user_id)
        await measure(stub, store, user_id, mint(key, user_id), task_ids, samples, label)
    if not million:
        estimate = per_task_s * 900_000 / 60
        print(
            f"  others' tasks: 1,000,000  skipped: loading would take about {estimate:.0f} min "
            "on this machine (from the 100,000 load); run with --million to measure it"
        )


async def scenario_one_user(
    database: Any,
    store: MongoTaskStore,
    stub: tasks_pb2_grpc.TasksServiceStub,
    key: Ed25519PrivateKey,
    samples: int,
) -> None:
    print("(b) one user holding many tasks")
    user_id = str(ObjectId())
    owned = 0
    for size in (100, 10_000, 100_000):
        added = size - owned
        seconds = await load(database, lambda i: user_id, added)
        owned = size
        label = f"the user's tasks: {size:>7,}  (loaded {added:,} more in {seconds:.1f} s)"
        task_ids = await user_task_ids(database, user_id)
        # Pages of a user this large take seconds each on SecantusDB (see docs/tasks.md).
        runs = samples if size <= 100 else max(3, samples // (4 if size <= 10_000 else 10))
        await measure(stub, store, user_id, mint(key, user_id), task_ids, runs, label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--million", action="store_true", help="also load 1,000,000 tasks")
    arguments = parser.parse_args()
    random.seed(7)
    # A long run is often stopped with SIGTERM; leaving through SystemExit lets the
    # finally blocks stop the SecantusDB it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(run(arguments.samples, arguments.million))


if __name__ == "__main__":
    main()
