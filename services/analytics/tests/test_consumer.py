"""The service with its consumer through real RabbitMQ, on an exchange of the test's own.

Events are published as the gateway and the other services publish them; the figures are
read back over gRPC, within the 5 s the API promises.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from pymongo import AsyncMongoClient
from taskmesh.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from taskmesh.events.v1 import events_pb2
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_analytics.settings import AnalyticsSettings
from taskmesh_chassis.testing import running_service

from .conftest import (
    AMQP_URL,
    SERVICE,
    as_admin,
    domain_event,
    eventually,
    new_id,
    publish,
    records_event,
    request_record,
    service_settings,
    wait_for_queue,
)

pytestmark = pytest.mark.integration

FRESHNESS_S = 5.0
"""How far behind the events the figures may be (API.md, "Analytics")."""
TASK_ROUTE = "/api/v1/tasks/{id}"


@pytest.fixture
def settings(secantus_url: str, free_port: int, exchange: str) -> AnalyticsSettings:
    return service_settings(secantus_url, free_port, AMQP_URL, events_exchange=exchange)


@pytest.fixture
async def stub(
    settings: AnalyticsSettings,
) -> AsyncIterator[analytics_pb2_grpc.AnalyticsServiceStub]:
    async with running_service(SERVICE, settings) as channel:
        await wait_for_queue(settings.event_topology)
        yield analytics_pb2_grpc.AnalyticsServiceStub(channel)


@pytest.fixture
async def database(settings: AnalyticsSettings) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value(), tz_aware=True
    )
    yield client[settings.mongodb_database]
    await client.close()


async def summary(stub: analytics_pb2_grpc.AnalyticsServiceStub) -> analytics_pb2.Summary:
    reply: analytics_pb2.Summary = await stub.GetSummary(
        analytics_pb2.GetSummaryRequest(), metadata=as_admin(), timeout=5
    )
    return reply


async def endpoints(stub: analytics_pb2_grpc.AnalyticsServiceStub) -> list[Any]:
    reply = await stub.GetEndpoints(
        analytics_pb2.GetEndpointsRequest(window=analytics_pb2.WINDOW_1H),
        metadata=as_admin(),
        timeout=5,
    )
    return list(reply.endpoints)


def task_created() -> Any:
    task = tasks_pb2.Task(id=new_id(), owner_id=new_id(), title="t")
    return domain_event("task.created", events_pb2.TaskCreated(task=task))


async def test_records_and_events_show_in_the_figures_within_five_seconds(
    stub: analytics_pb2_grpc.AnalyticsServiceStub, settings: AnalyticsSettings
) -> None:
    user = new_id()
    now = datetime.now(UTC)
    batch = records_event(
        request_record(TASK_ROUTE, duration_ms=8.0, at=now, user_id=user),
        request_record(TASK_ROUTE, status=500, duration_ms=40.0, at=now, user_id=user),
        request_record("/api/v1/tasks", method="POST", status=201, at=now, user_id=user),
        request_record("", status=404, at=now),
    )
    registered = domain_event(
        "user.registered", events_pb2.UserRegistered(user_id=user, email="a@example.org")
    )
    published = time.monotonic()
    await publish(settings.event_topology, batch, registered, task_created(), task_created())

    async def counted() -> bool:
        figures = await summary(stub)
        return (figures.requests_24h, figures.tasks_created_24h, figures.users_total) == (4, 2, 1)

    await eventually(counted, timeout_s=FRESHNESS_S)

    assert time.monotonic() - published < FRESHNESS_S
    figures = await summary(stub)
    assert (figures.users_active_24h, figures.tasks_total, figures.error_rate_24h) == (1, 2, 0.25)
    stats = {(item.route, item.method): item for item in await endpoints(stub)}
    assert set(stats) == {(TASK_ROUTE, "GET"), ("/api/v1/tasks", "POST"), ("", "GET")}
    assert (stats[TASK_ROUTE, "GET"].count, stats[TASK_ROUTE, "GET"].error_rate) == (2, 0.5)
    assert 8.0 / 1.25 <= stats[TASK_ROUTE, "GET"].p50_ms <= 40.0 * 1.25


async def test_a_redelivered_batch_is_counted_once(
    stub: analytics_pb2_grpc.AnalyticsServiceStub, settings: AnalyticsSettings, database: Any
) -> None:
    batch = records_event(request_record(), request_record(), request_record())
    # The gateway republishes a batch whose confirm it lost: the same event id again.
    await publish(settings.event_topology, batch, replace(batch), task_created())

    async def all_handled() -> bool:
        return await database.processed_events.count_documents({}) == 2

    await eventually(all_handled)
    await asyncio.sleep(0.5)  # the copy, handled after its original, changed nothing

    assert (await summary(stub)).requests_24h == 3
    assert [item.count for item in await endpoints(stub)] == [3]


async def test_a_deleted_user_leaves_no_trace_but_the_counts(
    stub: analytics_pb2_grpc.AnalyticsServiceStub, settings: AnalyticsSettings, database: Any
) -> None:
    user = new_id()
    topology = settings.event_topology
    await publish(
        topology,
        domain_event("user.registered", events_pb2.UserRegistered(user_id=user, email="a@b.org")),
        records_event(request_record(user_id=user), request_record(user_id=user)),
    )

    async def active() -> bool:
        return (await summary(stub)).users_active_24h == 1

    await eventually(active)

    await publish(
        topology,
        domain_event("user.deleted", events_pb2.UserDeleted(user_id=user, email="a@b.org")),
        records_event(request_record("/api/v1/users/me", method="DELETE", user_id=user)),
    )

    async def forgotten() -> bool:
        figures = await summary(stub)
        return (figures.users_total, figures.users_active_24h, figures.requests_24h) == (0, 0, 3)

    await eventually(forgotten)
    assert await database.last_seen.find_one({"_id": user}) is None
    (stats,) = [item for item in await endpoints(stub) if item.route == TASK_ROUTE]
    assert stats.count == 2


async def test_a_batch_with_an_implausible_record_is_dead_lettered_whole(
    stub: analytics_pb2_grpc.AnalyticsServiceStub, settings: AnalyticsSettings
) -> None:
    topology = settings.event_topology
    bad = records_event(request_record(), request_record(route="no-slash"))
    await publish(topology, bad, records_event(request_record()))

    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.declare_queue(topology.queues_of("analytics").dead_letter, passive=True)

        async def dead_lettered() -> bool:
            return (await dlq.declare()).message_count == 1

        await eventually(dead_lettered)

    async def good_batch_counted() -> bool:
        return (await summary(stub)).requests_24h == 1

    await eventually(good_batch_counted)
    await asyncio.sleep(0.3)
    assert (await summary(stub)).requests_24h == 1


async def test_many_events_at_once_are_all_counted(
    stub: analytics_pb2_grpc.AnalyticsServiceStub, settings: AnalyticsSettings
) -> None:
    events = [task_created() for _ in range(60)]
    started = time.monotonic()
    await publish(settings.event_topology, *events)

    async def counted() -> bool:
        return (await summary(stub)).tasks_created_24h == 60

    await eventually(counted, timeout_s=30)

    # One delivery at a time: no write conflict sends any of them to a retry queue.
    assert time.monotonic() - started < 10
