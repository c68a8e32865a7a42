"""The analytics service over gRPC: the contract every service keeps, who may ask, the checks.

The figures themselves are tested on the rollups (test_rollups.py) and through RabbitMQ
(test_consumer.py); here the RPCs' edge: admins only, enums and instants to domain values,
INVALID_ARGUMENT with the offending query parameter.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import grpc
import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient
from taskmesh.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from taskmesh_analytics.domain import Grain
from taskmesh_analytics.settings import AnalyticsSettings
from taskmesh_chassis.testing import ExpectedIndex, GrpcServiceContract, assert_indexes_exist

from .conftest import SERVICE, as_admin, as_user, new_id, service_settings, stamp

Stub = analytics_pb2_grpc.AnalyticsServiceStub


def field_errors(error: grpc.aio.AioRpcError) -> list[dict[str, Any]]:
    metadata = dict(error.trailing_metadata() or ())
    errors: list[dict[str, Any]] = json.loads(metadata["x-field-errors"])
    return errors


class TestAnalyticsService(GrpcServiceContract):
    service = SERVICE
    full_service_name = "taskmesh.analytics.v1.AnalyticsService"
    stub_class = analytics_pb2_grpc.AnalyticsServiceStub
    unimplemented_rpc: ClassVar[tuple[str, Message]] = (
        "GetSummary",
        analytics_pb2.GetSummaryRequest(),
    )

    # Every RPC is implemented: test_every_rpc_is_implemented takes the contract's place.
    test_rpc_not_implemented_yet_answers_unimplemented = None
    test_request_id_from_metadata_appears_in_the_access_log = None

    @pytest.fixture
    def settings(  # type: ignore[override]
        self, secantus_url: str, free_port: int, dead_amqp_url: str
    ) -> AnalyticsSettings:
        return service_settings(secantus_url, free_port, dead_amqp_url)

    @pytest.fixture
    def stub(self, channel: grpc.aio.Channel) -> Stub:
        return analytics_pb2_grpc.AnalyticsServiceStub(channel)

    @pytest.fixture
    async def database(self, settings: AnalyticsSettings) -> AsyncIterator[Any]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongodb_url.get_secret_value(), tz_aware=True
        )
        yield client[settings.mongodb_database]
        await client.close()

    async def test_indexes_exist_after_start_up(
        self, settings: AnalyticsSettings, channel: grpc.aio.Channel
    ) -> None:
        key = [("grain", 1), ("start", 1)]
        await assert_indexes_exist(
            settings,
            "route_rollups",
            [ExpectedIndex([*key, ("route", 1), ("method", 1)], unique=True)],
        )
        await assert_indexes_exist(settings, "activity_rollups", [ExpectedIndex(key, unique=True)])
        await assert_indexes_exist(settings, "last_seen", [ExpectedIndex([("last_seen", 1)])])

    async def test_every_rpc_is_implemented(self, stub: Stub) -> None:
        metadata = as_admin()
        calls = {
            "GetSummary": stub.GetSummary(analytics_pb2.GetSummaryRequest(), metadata=metadata),
            "GetEndpoints": stub.GetEndpoints(
                analytics_pb2.GetEndpointsRequest(), metadata=metadata
            ),
            "GetTimeseries": stub.GetTimeseries(
                analytics_pb2.GetTimeseriesRequest(metric=analytics_pb2.METRIC_REQUESTS),
                metadata=metadata,
            ),
        }
        codes = {}
        for name, call in calls.items():
            try:
                await call
                codes[name] = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                codes[name] = error.code()

        service = analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"]
        assert set(codes) == {method.name for method in service.methods}
        assert set(codes.values()) == {grpc.StatusCode.OK}

    @pytest.mark.parametrize("role", ["user", None])
    async def test_only_admins_may_call_any_rpc(self, stub: Stub, role: str | None) -> None:
        metadata = as_user(new_id(), role) if role else []
        expected = grpc.StatusCode.PERMISSION_DENIED if role else grpc.StatusCode.UNAUTHENTICATED
        calls = [
            stub.GetSummary(analytics_pb2.GetSummaryRequest(), metadata=metadata),
            stub.GetEndpoints(analytics_pb2.GetEndpointsRequest(), metadata=metadata),
            # A request that is invalid too: who asks is checked first.
            stub.GetTimeseries(analytics_pb2.GetTimeseriesRequest(), metadata=metadata),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call
            assert raised.value.code() == expected

    async def test_summary_of_an_empty_database_is_all_zero(self, stub: Stub) -> None:
        summary = await stub.GetSummary(analytics_pb2.GetSummaryRequest(), metadata=as_admin())

        assert summary == analytics_pb2.Summary()

    async def test_endpoints_answer_the_stored_route_figures(
        self, stub: Stub, database: Any
    ) -> None:
        minute = Grain.MINUTE.floor(datetime.now(UTC))
        await database.route_rollups.insert_one(
            {
                "grain": "minute",
                "start": minute,
                "route": "/api/v1/tasks/{id}",
                "method": "GET",
                "count": 4,
                "errors": 1,
                "latency": {"10": 4},
                "expires_at": minute + timedelta(days=1),
            }
        )

        reply = await stub.GetEndpoints(
            analytics_pb2.GetEndpointsRequest(window=analytics_pb2.WINDOW_1H),
            metadata=as_admin(),
        )

        (stats,) = reply.endpoints
        assert (stats.route, stats.method, stats.count, stats.error_rate) == (
            "/api/v1/tasks/{id}",
            "GET",
            4,
            0.25,
        )
        assert 0.5 * 1.25**9 <= stats.p50_ms <= stats.p95_ms <= 0.5 * 1.25**10

    async def test_a_series_has_a_point_per_bucket_from_start_to_end(self, stub: Stub) -> None:
        end = Grain.HOUR.floor(datetime.now(UTC))
        request = analytics_pb2.GetTimeseriesRequest(
            metric=analytics_pb2.METRIC_TASKS_CREATED,
            interval=analytics_pb2.INTERVAL_HOUR,
            start_time=stamp(end - timedelta(hours=5)),
            end_time=stamp(end),
        )

        reply = await stub.GetTimeseries(request, metadata=as_admin())

        assert [point.t.ToDatetime(tzinfo=UTC) for point in reply.points] == [
            end - timedelta(hours=hours) for hours in range(5, 0, -1)
        ]
        assert {point.value for point in reply.points} == {0.0}

    @pytest.mark.parametrize(
        ("request_fields", "loc"),
        [
            ({}, ["query", "metric"]),
            ({"metric": 99}, ["query", "metric"]),
            ({"metric": analytics_pb2.METRIC_REQUESTS, "interval": 7}, ["query", "interval"]),
            (
                {
                    "metric": analytics_pb2.METRIC_REQUESTS,
                    "start_time": Timestamp(seconds=-100),
                },
                ["query", "from"],
            ),
            (
                {
                    "metric": analytics_pb2.METRIC_REQUESTS,
                    "end_time": Timestamp(seconds=253402300799),
                },
                ["query", "to"],
            ),
            (
                {
                    "metric": analytics_pb2.METRIC_REQUESTS,
                    "interval": analytics_pb2.INTERVAL_HOUR,
                    "start_time": stamp(datetime.now(UTC) - timedelta(days=60)),
                },
                ["query", "from"],
            ),
        ],
    )
    async def test_an_invalid_series_request_names_the_parameter(
        self, stub: Stub, request_fields: dict[str, Any], loc: list[str]
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetTimeseries(
                analytics_pb2.GetTimeseriesRequest(**request_fields), metadata=as_admin()
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [error["loc"] for error in field_errors(raised.value)] == [loc]

    async def test_an_unknown_window_is_invalid(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetEndpoints(
                analytics_pb2.GetEndpointsRequest(window=9), metadata=as_admin()
            )

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_errors(raised.value)[0]["loc"] == ["query", "window"]
