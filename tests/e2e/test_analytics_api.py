"""Every row of API.md's Analytics section, through Traefik, against the whole suite.

The suite of this module starts with a bootstrap admin, rate limits lifted and an events
exchange of its own. The figures come from the gateway's request records and the services'
events, and may lag by at most 5 s: each check of a figure is retried until 5 s after the
last request it is about, and fails after that. Figures are compared with a reading taken
before the test's own requests; tasks and users change only through the test running (the
tests run one after another and each waits for its own effects), while requests also come
from the readings themselves, so request counts are compared as "at least".

The deletion test reads the analytics database directly: nothing kept about the user there.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.database import Database
from taskmesh_localrun.testing import ApiUser, LocalRun, eventually, register_user

from .conftest import SHARED_SUITE_RATE_LIMITS, StartSuite

pytestmark = pytest.mark.e2e

ADMIN_EMAIL = "e2e-analytics-admin@example.com"
ADMIN_PASSWORD = "e2e analytics admin password, long enough"
ANALYTICS = "/api/v1/analytics"
TASKS = "/api/v1/tasks"
TASK_ROUTE = "/api/v1/tasks/{id}"
MISSING_ID = "65f0c0ffee0000000000cccc"
FRESHNESS_S = 5.0
"""How far behind the requests the figures may be (API.md)."""
EVENT_TIMEOUT_S = 15.0
"""How long a chain of events (a deletion: auth, tasks, analytics) may take."""
OBJECT_ID = re.compile(r"[0-9a-f]{24}")
SUMMARY_FIELDS = {
    "users_total",
    "users_active_24h",
    "tasks_total",
    "tasks_created_24h",
    "tasks_completed_24h",
    "requests_24h",
    "error_rate_24h",
}


@dataclass(frozen=True)
class AnalyticsSuite:
    """The running suite and the analytics database, for what the API cannot show."""

    run: LocalRun
    analytics_db: Database[dict[str, Any]]


@pytest.fixture(scope="module")
def analytics_suite(start_suite: StartSuite) -> Iterator[AnalyticsSuite]:
    prefix = f"e2e_analytics_{secrets.token_hex(4)}_"
    run = start_suite(
        MONGODB_DATABASE_PREFIX=prefix,
        BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        **SHARED_SUITE_RATE_LIMITS,
    )
    try:
        run.wait_until_readyz()
        mongo: MongoClient[dict[str, Any]] = MongoClient(run.state["mongodb_url"], tz_aware=True)
        with mongo:
            yield AnalyticsSuite(run, mongo[f"{prefix}analytics"])
    finally:
        run.close()


@pytest.fixture
def client(analytics_suite: AnalyticsSuite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=analytics_suite.run.url, timeout=30) as http:
        yield http


@pytest.fixture
def admin(client: httpx.Client) -> ApiUser:
    response = client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    return ApiUser(me.json()["id"], token)


@pytest.fixture
def user(client: httpx.Client) -> ApiUser:
    return register_user(client)


def summary(client: httpx.Client, admin: ApiUser) -> dict[str, Any]:
    response = client.get(f"{ANALYTICS}/summary", headers=admin.auth)
    assert response.status_code == 200, response.text
    figures: dict[str, Any] = response.json()
    return figures


def endpoints(client: httpx.Client, admin: ApiUser, window: str = "1h") -> list[dict[str, Any]]:
    response = client.get(f"{ANALYTICS}/endpoints", params={"window": window}, headers=admin.auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def create_task(client: httpx.Client, owner: ApiUser) -> dict[str, Any]:
    response = client.post(TASKS, json={"title": "Counted"}, headers=owner.auth)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def within_freshness(since: float, check: Callable[[], bool]) -> bool:
    """Poll `check` until it holds, at most until FRESHNESS_S after `since` (monotonic)."""
    return eventually(check, timeout_s=max(0.0, since + FRESHNESS_S - time.monotonic()))


# --- who may ask, and what -------------------------------------------------------------------


ROUTES = [
    f"{ANALYTICS}/summary",
    f"{ANALYTICS}/endpoints?window=24h",
    f"{ANALYTICS}/timeseries?metric=requests&interval=hour",
]


@pytest.mark.parametrize("path", ROUTES)
def test_non_admins_are_refused_with_403(client: httpx.Client, user: ApiUser, path: str) -> None:
    response = client.get(path, headers=user.auth)

    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("path", ROUTES)
def test_without_a_token_is_401(client: httpx.Client, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("path", "loc"),
    [
        (f"{ANALYTICS}/endpoints?window=2h", ["query", "window"]),
        (f"{ANALYTICS}/timeseries?metric=revenue", ["query", "metric"]),
        (f"{ANALYTICS}/timeseries?metric=requests&interval=minute", ["query", "interval"]),
        (f"{ANALYTICS}/timeseries?interval=hour", ["query", "metric"]),
        (
            f"{ANALYTICS}/timeseries?metric=requests&from=2026-11-28T00:00:00Z"
            "&to=2026-11-01T00:00:00Z",
            ["query", "from"],
        ),
        (
            # Too many points: decided by the analytics service, reported alike.
            f"{ANALYTICS}/timeseries?metric=requests&interval=hour&from={{two_months_ago}}",
            ["query", "from"],
        ),
    ],
)
def test_values_outside_their_sets_are_422(
    client: httpx.Client, admin: ApiUser, path: str, loc: list[str]
) -> None:
    two_months_ago = datetime.fromtimestamp(time.time() - 60 * 86400, UTC)
    url = path.replace("{two_months_ago}", two_months_ago.strftime("%Y-%m-%dT%H:%M:%SZ"))

    response = client.get(url, headers=admin.auth)

    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["errors"]]


# --- the figures -------------------------------------------------------------------------------


def test_summary_reflects_requests_and_task_events_within_five_seconds(
    client: httpx.Client, admin: ApiUser
) -> None:
    before = summary(client, admin)
    owner = register_user(client, "Counted Owner")
    tasks = [create_task(client, owner) for _ in range(3)]
    done = client.patch(f"{TASKS}/{tasks[0]['id']}", json={"status": "done"}, headers=owner.auth)
    missing = client.get(f"{TASKS}/{MISSING_ID}", headers=owner.auth)
    invalid = client.post(TASKS, json={"title": ""}, headers=owner.auth)
    last_request = time.monotonic()
    assert (done.status_code, missing.status_code, invalid.status_code) == (200, 404, 422)
    made = 1 + 3 + 3 + 1  # register, creates, the patch, the 404 and the 422, the reading

    figures: dict[str, Any] = {}

    def reflected() -> bool:
        figures.update(summary(client, admin))
        return bool(
            figures["tasks_created_24h"] == before["tasks_created_24h"] + 3
            and figures["tasks_completed_24h"] == before["tasks_completed_24h"] + 1
            and figures["tasks_total"] == before["tasks_total"] + 3
            and figures["users_total"] == before["users_total"] + 1
            and figures["users_active_24h"] >= before["users_active_24h"] + 1
            and figures["requests_24h"] >= before["requests_24h"] + made
        )

    assert within_freshness(last_request, reflected), (before, figures)
    assert set(figures) == SUMMARY_FIELDS
    assert 0.0 <= figures["error_rate_24h"] <= 1.0


def test_endpoints_list_route_templates_with_their_figures(
    client: httpx.Client, admin: ApiUser, user: ApiUser
) -> None:
    task = create_task(client, user)
    before = {(item["route"], item["method"]): item["count"] for item in endpoints(client, admin)}
    for _ in range(4):
        assert client.get(f"{TASKS}/{task['id']}", headers=user.auth).status_code == 200
    assert client.get(f"{TASKS}/{MISSING_ID}", headers=user.auth).status_code == 404
    last_request = time.monotonic()

    items: list[dict[str, Any]] = []

    def counted() -> bool:
        items[:] = endpoints(client, admin)
        counts = {(item["route"], item["method"]): item["count"] for item in items}
        return bool(counts.get((TASK_ROUTE, "GET"), 0) >= before.get((TASK_ROUTE, "GET"), 0) + 5)

    assert within_freshness(last_request, counted), items
    for item in items:
        assert set(item) == {"route", "method", "count", "error_rate", "p50_ms", "p95_ms"}
        assert not OBJECT_ID.search(item["route"]), item
        assert item["count"] >= 1
        assert 0.0 <= item["error_rate"] <= 1.0
        assert 0.0 < item["p50_ms"] <= item["p95_ms"]
    routes = {(item["route"], item["method"]) for item in items}
    assert {(TASK_ROUTE, "GET"), (TASKS, "POST"), (f"{ANALYTICS}/endpoints", "GET")} <= routes
    assert [item["count"] for item in items] == sorted(
        (item["count"] for item in items), reverse=True
    )


@pytest.mark.parametrize("window", ["24h", "7d"])
def test_longer_windows_include_the_last_hour(
    client: httpx.Client, admin: ApiUser, user: ApiUser, window: str
) -> None:
    assert client.get(f"{TASKS}/{MISSING_ID}", headers=user.auth).status_code == 404
    last_request = time.monotonic()
    hour: dict[tuple[str, str], int] = {}

    def recorded() -> bool:
        hour.update(
            {(item["route"], item["method"]): item["count"] for item in endpoints(client, admin)}
        )
        return (TASK_ROUTE, "GET") in hour

    assert within_freshness(last_request, recorded), hour
    longer = {
        (item["route"], item["method"]): item["count"] for item in endpoints(client, admin, window)
    }

    assert all(longer.get(key, 0) >= count for key, count in hour.items()), (hour, longer)


def hour_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:00:00.000Z")


def day_of(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT00:00:00.000Z")


def test_timeseries_answers_points_for_each_metric(
    client: httpx.Client, admin: ApiUser, user: ApiUser
) -> None:
    created_hour = hour_of(datetime.now(UTC))
    for _ in range(2):
        create_task(client, user)
    last_request = time.monotonic()
    points: list[dict[str, Any]] = []

    def tasks_counted_since_created_hour() -> bool:
        response = client.get(
            f"{ANALYTICS}/timeseries",
            params={"metric": "tasks_created", "interval": "hour"},
            headers=admin.auth,
        )
        assert response.status_code == 200, response.text
        points[:] = response.json()["points"]
        return bool(sum(point["value"] for point in points if point["t"] >= created_hour) >= 2)

    assert within_freshness(last_request, tasks_counted_since_created_hour), points
    assert len(points) == 25
    assert all(point["t"].endswith(":00:00.000Z") for point in points)
    for metric in ("tasks_completed", "users_registered", "requests"):
        today = day_of(datetime.now(UTC))
        response = client.get(
            f"{ANALYTICS}/timeseries",
            params={"metric": metric, "interval": "day"},
            headers=admin.auth,
        )
        assert response.status_code == 200, response.text
        days = response.json()["points"]
        assert len(days) == 31
        assert days[-1]["t"] in {today, day_of(datetime.now(UTC))}
        assert all(point["value"] >= 0 for point in days)
    assert sum(point["value"] for point in days) >= 1  # requests, at least this module's


def test_an_explicit_range_gives_one_point_per_bucket_with_zeros(
    client: httpx.Client, admin: ApiUser
) -> None:
    response = client.get(
        f"{ANALYTICS}/timeseries",
        params={
            "metric": "users_registered",
            "interval": "hour",
            "from": "2030-01-01T00:30:00Z",
            "to": "2030-01-01T04:00:00Z",
        },
        headers=admin.auth,
    )

    assert response.status_code == 200, response.text
    assert response.json()["points"] == [
        {"t": f"2030-01-01T0{hour}:00:00.000Z", "value": 0.0} for hour in range(4)
    ]


def test_a_deleted_user_leaves_only_anonymous_counts(
    client: httpx.Client, admin: ApiUser, analytics_suite: AnalyticsSuite
) -> None:
    doomed = register_user(client, f"Doomed {uuid.uuid4().hex[:6]}")
    create_task(client, doomed)
    last_seen = analytics_suite.analytics_db["last_seen"]
    assert eventually(lambda: last_seen.find_one({"_id": doomed.id}) is not None, EVENT_TIMEOUT_S)
    before = summary(client, admin)

    response = client.delete("/api/v1/users/me", headers=doomed.auth)
    assert response.status_code == 204, response.text

    figures: dict[str, Any] = {}

    def forgotten() -> bool:
        figures.update(summary(client, admin))
        return bool(
            figures["users_total"] == before["users_total"] - 1
            and figures["tasks_total"] == before["tasks_total"] - 1
        )

    assert eventually(forgotten, EVENT_TIMEOUT_S), (before, figures)

    # The DELETE's own record, shipped after the deletion may have been applied, is counted
    # and brings nothing back.
    def delete_counted() -> bool:
        return any(
            (item["route"], item["method"]) == ("/api/v1/users/me", "DELETE")
            for item in endpoints(client, admin)
        )

    assert eventually(delete_counted, EVENT_TIMEOUT_S)
    assert last_seen.find_one({"_id": doomed.id}) is None
    assert summary(client, admin)["requests_24h"] > before["requests_24h"]
