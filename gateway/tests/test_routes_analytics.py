"""The /api/v1/analytics routes (admins only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.analytics.v1 import analytics_pb2
from taskmesh_chassis.identity import Caller
from taskmesh_gateway.app import create_app
from taskmesh_gateway.dependencies import get_current_user
from taskmesh_gateway.schemas.auth import Role
from taskmesh_gateway.settings import GatewaySettings

HOUR = datetime(2026, 11, 28, 9, tzinfo=UTC)


class FakeAnalyticsService:
    """Answers like the analytics service with fixed figures, or fails with `error`."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.error: grpc.aio.AioRpcError | None = None

    async def GetSummary(self, request: analytics_pb2.GetSummaryRequest) -> analytics_pb2.Summary:
        self.requests.append(request)
        return analytics_pb2.Summary(users_total=3, requests_24h=40, error_rate_24h=0.025)

    async def GetEndpoints(
        self, request: analytics_pb2.GetEndpointsRequest
    ) -> analytics_pb2.GetEndpointsResponse:
        self.requests.append(request)
        stats = analytics_pb2.EndpointStats(
            route="/api/v1/tasks/{id}", method="GET", count=12, p50_ms=3.5, p95_ms=9.0
        )
        return analytics_pb2.GetEndpointsResponse(endpoints=[stats])

    async def GetTimeseries(
        self, request: analytics_pb2.GetTimeseriesRequest
    ) -> analytics_pb2.GetTimeseriesResponse:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        t = Timestamp()
        t.FromDatetime(HOUR)
        return analytics_pb2.GetTimeseriesResponse(points=[analytics_pb2.Point(t=t, value=4)])


class ServiceClientsStandIn:
    def __init__(self, analytics: FakeAnalyticsService) -> None:
        self.analytics = analytics


@pytest.fixture
def analytics_service() -> FakeAnalyticsService:
    return FakeAnalyticsService()


@pytest.fixture
def app(analytics_service: FakeAnalyticsService, open_gate: Any) -> FastAPI:
    app = create_app(GatewaySettings())
    app.state.clients = ServiceClientsStandIn(analytics_service)
    app.state.gatekeeper = open_gate
    return app


def sign_in(app: FastAPI, role: Role) -> None:
    caller = Caller(
        "u1", role, "jti-1", "sid-1", HOUR.timestamp() - 900, HOUR.timestamp(), "token-1"
    )
    app.dependency_overrides[get_current_user] = lambda: caller


@pytest.fixture
def as_admin(app: FastAPI) -> None:
    sign_in(app, Role.admin)


async def test_summary_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/analytics/summary")

    assert response.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/analytics/summary",
        "/api/v1/analytics/endpoints?window=1h",
        "/api/v1/analytics/timeseries?metric=requests",
    ],
)
async def test_every_route_is_403_for_non_admins(
    app: FastAPI, client: httpx.AsyncClient, analytics_service: FakeAnalyticsService, path: str
) -> None:
    sign_in(app, Role.user)

    response = await client.get(path)

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert analytics_service.requests == []


@pytest.mark.usefixtures("as_admin")
async def test_summary_answers_every_figure(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/analytics/summary")

    assert response.status_code == 200
    assert response.json() == {
        "users_total": 3,
        "users_active_24h": 0,
        "tasks_total": 0,
        "tasks_created_24h": 0,
        "tasks_completed_24h": 0,
        "requests_24h": 40,
        "error_rate_24h": 0.025,
    }


@pytest.mark.usefixtures("as_admin")
async def test_endpoints_default_to_a_24h_window(
    client: httpx.AsyncClient, analytics_service: FakeAnalyticsService
) -> None:
    response = await client.get("/api/v1/analytics/endpoints")

    assert response.status_code == 200
    assert response.json()["items"] == [
        {
            "route": "/api/v1/tasks/{id}",
            "method": "GET",
            "count": 12,
            "error_rate": 0.0,
            "p50_ms": 3.5,
            "p95_ms": 9.0,
        }
    ]
    assert analytics_service.requests == [
        analytics_pb2.GetEndpointsRequest(window=analytics_pb2.WINDOW_24H)
    ]


@pytest.mark.usefixtures("as_admin")
@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("1h", analytics_pb2.WINDOW_1H),
        ("24h", analytics_pb2.WINDOW_24H),
        ("7d", analytics_pb2.WINDOW_7D),
    ],
)
async def test_endpoints_pass_each_window(
    client: httpx.AsyncClient, analytics_service: FakeAnalyticsService, window: str, expected: int
) -> None:
    response = await client.get(f"/api/v1/analytics/endpoints?window={window}")

    assert response.status_code == 200
    assert analytics_service.requests == [analytics_pb2.GetEndpointsRequest(window=expected)]


@pytest.mark.usefixtures("as_admin")
@pytest.mark.parametrize("window", ["2h", "1d", "", "24H"])
async def test_endpoints_with_an_unknown_window_is_422(
    client: httpx.AsyncClient, analytics_service: FakeAnalyticsService, window: str
) -> None:
    response = await client.get(f"/api/v1/analytics/endpoints?window={window}")

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "window"]
    assert analytics_service.requests == []


@pytest.mark.usefixtures("as_admin")
async def test_timeseries_passes_metric_interval_and_range(
    client: httpx.AsyncClient, analytics_service: FakeAnalyticsService
) -> None:
    response = await client.get(
        "/api/v1/analytics/timeseries",
        params={
            "metric": "tasks_created",
            "interval": "day",
            "from": "2026-11-01T00:00:00Z",
            "to": "2026-11-28T00:00:00Z",
        },
    )

    assert response.status_code == 200
    assert response.json() == {"points": [{"t": "2026-11-28T09:00:00.000Z", "value": 4.0}]}
    (request,) = analytics_service.requests
    assert request.metric == analytics_pb2.METRIC_TASKS_CREATED
    assert request.interval == analytics_pb2.INTERVAL_DAY
    assert request.start_time.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 1, tzinfo=UTC)
    assert request.end_time.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 28, tzinfo=UTC)


@pytest.mark.usefixtures("as_admin")
@pytest.mark.parametrize(
    "query",
    [
        "interval=hour",
        "metric=revenue",
        "metric=requests&interval=minute",
        "metric=requests&from=2026-11-28T00:00:00Z&to=2026-11-01T00:00:00Z",
        "metric=requests&from=2026-11-28T00:00:00",
        "metric=requests&to=yesterday",
    ],
)
async def test_timeseries_rejects_bad_queries_with_422(
    client: httpx.AsyncClient, query: str
) -> None:
    response = await client.get(f"/api/v1/analytics/timeseries?{query}")

    assert response.status_code == 422


@pytest.mark.usefixtures("as_admin")
async def test_timeseries_defaults_to_hours_and_leaves_the_range_to_the_service(
    client: httpx.AsyncClient, analytics_service: FakeAnalyticsService
) -> None:
    response = await client.get("/api/v1/analytics/timeseries?metric=users_registered")

    assert response.status_code == 200
    (request,) = analytics_service.requests
    assert request.metric == analytics_pb2.METRIC_USERS_REGISTERED
    assert request.interval == analytics_pb2.INTERVAL_HOUR
    assert not request.HasField("start_time")
    assert not request.HasField("end_time")


@pytest.mark.usefixtures("as_admin")
async def test_a_range_the_service_refuses_is_422_naming_the_parameter(
    client: httpx.AsyncClient, analytics_service: FakeAnalyticsService
) -> None:
    analytics_service.error = grpc.aio.AioRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(
            ("x-field-errors", '[{"loc":["query","from"],"msg":"at most 1000 points"}]')
        ),
        details="invalid request",
    )

    response = await client.get(
        "/api/v1/analytics/timeseries",
        params={"metric": "requests", "from": "2020-01-01T00:00:00Z"},
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [{"loc": ["query", "from"], "msg": "at most 1000 points"}]
