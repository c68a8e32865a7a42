"""The handlers and the figures against real SecantusDB, on a fixed clock.

Each handler runs in a transaction of its own, as the consumer runs them; the use cases read
what they stored. The stored documents are looked at where the contract is about them: one
document per bucket key, expiry per grain, nothing kept about a deleted user.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from taskmesh.events.v1 import events_pb2
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_analytics.consumer import AnalyticsEvents
from taskmesh_analytics.domain import (
    ROUTE_GRAINS,
    BucketRange,
    Grain,
    Metric,
    Viewer,
    Window,
    cover,
    window_ending_at,
)
from taskmesh_analytics.histogram import GROWTH
from taskmesh_analytics.repository import LAST_SEEN_TTL, RollupReader, RollupWriter
from taskmesh_analytics.service import AnalyticsService
from taskmesh_chassis.errors import PermissionDenied
from taskmesh_chassis.events import Event

from .conftest import RETENTION, domain_event, new_id, records_event, request_record

pytestmark = pytest.mark.integration

# Now, a little after the middle of a minute; recent enough for no TTL to touch the buckets.
NOW = Grain.MINUTE.floor(datetime.now(UTC)) + timedelta(seconds=30)
ADMIN = Viewer(new_id(), is_admin=True)
TASK_ROUTE = "/api/v1/tasks/{id}"
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


class Analytics:
    """The handlers, each run in a transaction as the consumer does, and the use cases."""

    def __init__(self, database: Any) -> None:
        self.database = database
        self._handlers = AnalyticsEvents(RollupWriter(database, RETENTION), lambda: NOW).handlers()
        self.reader = RollupReader(database)
        self.service = AnalyticsService(self.reader, RETENTION, lambda: NOW)

    async def handle(self, *events: Event) -> None:
        for event in events:
            async with (
                self.database.client.start_session() as session,
                await session.start_transaction(),
            ):
                await self._handlers[event.type](event, session)

    async def documents(self, collection: str, **conditions: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.database[collection].find(conditions).to_list()
        return found


@pytest.fixture
def analytics(analytics_db: Any) -> Analytics:
    return Analytics(analytics_db)


def task_event(event_type: str, at: datetime = NOW) -> Event:
    task = tasks_pb2.Task(id=new_id(), owner_id=new_id(), title="t")
    payloads = {
        "task.created": events_pb2.TaskCreated(task=task),
        "task.completed": events_pb2.TaskCompleted(task=task),
        "task.deleted": events_pb2.TaskDeleted(task_id=task.id, owner_id=task.owner_id),
    }
    return domain_event(event_type, payloads[event_type], at=at)


def user_event(event_type: str, user_id: str, at: datetime = NOW) -> Event:
    payload: Any = (
        events_pb2.UserRegistered(user_id=user_id, email="ada@example.org", name="Ada")
        if event_type == "user.registered"
        else events_pb2.UserDeleted(user_id=user_id, email="ada@example.org")
    )
    return domain_event(event_type, payload, at=at)


def winning_plan(plan: dict[str, Any]) -> str:
    return json.dumps(plan["queryPlanner"]["winningPlan"], default=str)


# --- request records ------------------------------------------------------------------------


async def test_a_batch_becomes_one_document_per_route_bucket(analytics: Analytics) -> None:
    await analytics.handle(
        records_event(
            request_record(TASK_ROUTE, duration_ms=3.0, at=NOW),
            request_record(TASK_ROUTE, status=502, duration_ms=700.0, at=NOW),
            request_record("/api/v1/tasks", method="POST", status=201, at=NOW),
        )
    )
    await analytics.handle(records_event(request_record(TASK_ROUTE, duration_ms=3.1, at=NOW)))

    minute = await analytics.documents(
        "route_rollups", grain="minute", route=TASK_ROUTE, method="GET"
    )
    hour = await analytics.documents("route_rollups", grain="hour", route=TASK_ROUTE)
    assert len(minute) == len(hour) == 1
    assert minute[0]["start"] == Grain.MINUTE.floor(NOW)
    assert (minute[0]["count"], minute[0]["errors"]) == (3, 1)
    assert sum(minute[0]["latency"].values()) == 3
    assert hour[0]["start"] == Grain.HOUR.floor(NOW)
    assert hour[0]["count"] == 3
    assert len(await analytics.documents("route_rollups")) == 4


async def test_each_grain_expires_after_its_own_retention(analytics: Analytics) -> None:
    await analytics.handle(records_event(request_record(at=NOW)))

    expiry = {
        document["grain"]: document.get("expires_at")
        for document in await analytics.documents("activity_rollups")
    }

    minute, hour, day = (Grain.MINUTE.floor(NOW), Grain.HOUR.floor(NOW), Grain.DAY.floor(NOW))
    assert expiry == {
        "minute": minute + timedelta(minutes=1) + RETENTION.minute,
        "hour": hour + timedelta(hours=1) + RETENTION.hour,
        "day": day + timedelta(days=1) + RETENTION.day,
        "all": None,
    }


async def test_endpoints_merge_the_windows_buckets_into_counts_and_quantiles(
    analytics: Analytics,
) -> None:
    rng = random.Random(3)
    durations = [rng.lognormvariate(3, 0.8) for _ in range(400)]
    # Spread over the last 50 minutes (each minute and its hour bucket), and three 5xx.
    records = [
        request_record(
            TASK_ROUTE,
            status=500 if index < 3 else 200,
            duration_ms=duration,
            at=NOW - timedelta(minutes=index % 50),
        )
        for index, duration in enumerate(durations)
    ]
    await analytics.handle(records_event(*records[:200]), records_event(*records[200:]))
    # Older than the hour window: counted in the 24-hour one only.
    await analytics.handle(records_event(request_record(TASK_ROUTE, at=NOW - timedelta(hours=3))))

    (hour,) = await analytics.service.endpoints(ADMIN, Window.HOUR)
    (day,) = await analytics.service.endpoints(ADMIN, Window.DAY)

    assert (hour.route, hour.method, hour.count, hour.error_rate) == (
        TASK_ROUTE,
        "GET",
        400,
        3 / 400,
    )
    ordered = sorted(durations)
    for estimate, exact in ((hour.p50_ms, ordered[199]), (hour.p95_ms, ordered[379])):
        assert exact / GROWTH <= estimate <= exact * GROWTH
    assert day.count == 401


async def test_endpoints_list_the_busiest_first(analytics: Analytics) -> None:
    await analytics.handle(
        records_event(
            request_record("/api/v1/tasks", method="POST", at=NOW),
            request_record(TASK_ROUTE, at=NOW),
            request_record(TASK_ROUTE, at=NOW),
            request_record("", status=404, at=NOW),
        )
    )

    stats = await analytics.service.endpoints(ADMIN, Window.WEEK)

    assert [(item.route, item.method, item.count) for item in stats] == [
        (TASK_ROUTE, "GET", 2),
        ("", "GET", 1),
        ("/api/v1/tasks", "POST", 1),
    ]


async def test_summary_counts_requests_users_and_tasks(analytics: Analytics) -> None:
    users = [new_id() for _ in range(3)]
    await analytics.handle(
        *(user_event("user.registered", user) for user in users),
        task_event("task.created"),
        task_event("task.created"),
        task_event("task.created", at=NOW - timedelta(days=2)),
        task_event("task.completed"),
        task_event("task.deleted"),
        records_event(
            request_record(user_id=users[0], at=NOW),
            request_record(user_id=users[1], status=503, at=NOW - timedelta(hours=23)),
            request_record(user_id=users[2], at=NOW - timedelta(hours=30)),
            request_record(at=NOW),
        ),
    )

    summary = await analytics.service.summary(ADMIN)

    assert summary.users_total == 3
    assert summary.users_active_24h == 2
    assert summary.tasks_total == 2
    assert (summary.tasks_created_24h, summary.tasks_completed_24h) == (2, 1)
    assert (summary.requests_24h, summary.error_rate_24h) == (3, 1 / 3)


async def test_a_user_is_active_from_their_latest_request_only(analytics: Analytics) -> None:
    user = new_id()
    await analytics.handle(records_event(request_record(user_id=user, at=NOW)))
    await analytics.handle(
        records_event(request_record(user_id=user, at=NOW - timedelta(hours=30)))
    )

    (seen,) = await analytics.documents("last_seen")

    assert seen == {
        "_id": user,
        "last_seen": NOW.replace(microsecond=NOW.microsecond // 1000 * 1000),
    }


async def test_last_seen_moves_only_once_a_minute_has_passed(analytics: Analytics) -> None:
    user = new_id()
    await analytics.handle(records_event(request_record(user_id=user, at=NOW - 2 * MINUTE)))
    await analytics.handle(
        records_event(request_record(user_id=user, at=NOW - 2 * MINUTE + timedelta(seconds=30)))
    )
    unmoved = await analytics.documents("last_seen")
    await analytics.handle(records_event(request_record(user_id=user, at=NOW)))

    assert [document["last_seen"] for document in unmoved] == [NOW - 2 * MINUTE]
    assert [document["last_seen"] for document in await analytics.documents("last_seen")] == [NOW]


async def test_records_older_than_the_last_seen_ttl_make_nobody_active(
    analytics: Analytics,
) -> None:
    await analytics.handle(
        records_event(
            request_record(user_id=new_id(), at=NOW - LAST_SEEN_TTL - timedelta(minutes=1))
        )
    )

    assert await analytics.documents("last_seen") == []
    assert (await analytics.service.summary(ADMIN)).users_active_24h == 0


async def test_a_deleted_user_leaves_only_anonymous_counts(analytics: Analytics) -> None:
    user, witness = new_id(), new_id()
    await analytics.handle(
        user_event("user.registered", user),
        user_event("user.registered", witness),
        records_event(
            request_record(user_id=user, at=NOW), request_record(user_id=witness, at=NOW)
        ),
    )

    await analytics.handle(user_event("user.deleted", user))
    # A batch still in flight when the deletion was applied, then the one with the deletion.
    await analytics.handle(
        records_event(request_record(user_id=user, at=NOW)),
        records_event(request_record("/api/v1/users/me", method="DELETE", user_id=user, at=NOW)),
    )

    assert [document["_id"] for document in await analytics.documents("last_seen")] == [witness]
    summary = await analytics.service.summary(ADMIN)
    assert (summary.users_total, summary.users_active_24h, summary.requests_24h) == (1, 1, 4)
    stored = json.dumps(
        [
            await analytics.documents(name)
            for name in ("route_rollups", "activity_rollups", "last_seen")
        ],
        default=str,
    )
    assert user not in stored


# --- time series ----------------------------------------------------------------------------


async def test_a_series_answers_zero_for_empty_buckets(analytics: Analytics) -> None:
    hour = Grain.HOUR.floor(NOW)
    await analytics.handle(
        task_event("task.created", at=hour - timedelta(hours=2)),
        task_event("task.created", at=hour - timedelta(hours=2)),
        task_event("task.created", at=NOW),
        task_event("task.completed", at=NOW),
    )

    points = await analytics.service.timeseries(
        ADMIN, Metric.TASKS_CREATED, Grain.HOUR, hour - timedelta(hours=3), NOW
    )

    assert [(point.t, point.value) for point in points] == [
        (hour - timedelta(hours=3), 0.0),
        (hour - timedelta(hours=2), 2.0),
        (hour - timedelta(hours=1), 0.0),
        (hour, 1.0),
    ]


async def test_a_day_series_reads_day_buckets(analytics: Analytics) -> None:
    day = Grain.DAY.floor(NOW)
    await analytics.handle(
        user_event("user.registered", new_id(), at=day - timedelta(days=1, hours=-3)),
        user_event("user.registered", new_id(), at=NOW),
    )

    points = await analytics.service.timeseries(
        ADMIN, Metric.USERS_REGISTERED, Grain.DAY, day - timedelta(days=2), None
    )

    assert [point.value for point in points] == [0.0, 1.0, 1.0]


async def test_only_admins_read_figures(analytics: Analytics) -> None:
    viewer = Viewer(new_id(), is_admin=False)

    for call in (
        analytics.service.summary(viewer),
        analytics.service.endpoints(viewer, Window.DAY),
        analytics.service.timeseries(viewer, Metric.REQUESTS, Grain.HOUR, None, None),
    ):
        with pytest.raises(PermissionDenied):
            await call


# --- query plans ----------------------------------------------------------------------------


async def test_rollup_reads_use_the_key_indexes_and_read_only_the_window(
    analytics: Analytics,
) -> None:
    # Six hours of minutes and a week of hours, stored as the writer stores them.
    minute, hour = Grain.MINUTE.floor(NOW), Grain.HOUR.floor(NOW)
    history = [
        (grain, start)
        for grain, length, count in ((Grain.MINUTE, MINUTE, 6 * 60), (Grain.HOUR, HOUR, 168))
        for start in (
            (minute if grain is Grain.MINUTE else hour) - length * n for n in range(count)
        )
    ]
    expires = NOW + timedelta(days=1)
    await analytics.database.route_rollups.insert_many(
        {
            "grain": grain.value,
            "start": start,
            "route": TASK_ROUTE,
            "method": "GET",
            "count": 1,
            "latency": {"20": 1},
            "expires_at": expires,
        }
        for grain, start in history
    )
    await analytics.database.activity_rollups.insert_many(
        {"grain": grain.value, "start": start, "requests": 1, "expires_at": expires}
        for grain, start in history
    )
    start, end = window_ending_at(NOW, Window.HOUR.length)
    (minutes,) = cover(start, end, ROUTE_GRAINS)
    hours = BucketRange(Grain.HOUR, hour - timedelta(hours=24), hour)

    plans = [
        await analytics.reader.explain_routes(minutes),
        await analytics.reader.explain_activity(hours),
    ]

    winning = [winning_plan(plan) for plan in plans]
    assert all('"IXSCAN"' in plan and "COLLSCAN" not in plan for plan in winning), winning
    assert '"grain_start_route_method"' in winning[0]
    assert '"grain_start"' in winning[1]
    examined = [plan["executionStats"]["totalDocsExamined"] for plan in plans]
    assert examined == [61, 24]
    (stats,) = await analytics.service.endpoints(ADMIN, Window.HOUR)
    assert stats.count == 61


async def test_the_active_user_count_uses_the_last_seen_index(analytics: Analytics) -> None:
    await analytics.handle(
        records_event(*(request_record(user_id=new_id(), at=NOW) for _ in range(20)))
    )

    plan = winning_plan(await analytics.reader.explain_active_users(NOW - timedelta(hours=24)))

    assert '"IXSCAN"' in plan
    assert '"last_seen_ttl"' in plan
    assert "COLLSCAN" not in plan


def _range_conditions(bucket_range: BucketRange) -> dict[str, Any]:
    return {
        "grain": bucket_range.grain.value,
        "start": {"$gte": bucket_range.first, "$lt": bucket_range.stop},
    }
