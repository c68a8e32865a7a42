"""Queries and answers of `/api/v1/analytics`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field
from taskmesh.analytics.v1 import analytics_pb2

from taskmesh_gateway.schemas.common import UtcDatetime, datetime_from_proto, timestamp_to_proto


class Window(StrEnum):
    """A span of time ending now."""

    hour = "1h"
    day = "24h"
    week = "7d"


class Metric(StrEnum):
    """A counted quantity."""

    tasks_created = "tasks_created"
    tasks_completed = "tasks_completed"
    users_registered = "users_registered"
    requests = "requests"


class Interval(StrEnum):
    """A bucket width."""

    hour = "hour"
    day = "day"


_WINDOW_TO_PROTO = {
    Window.hour: analytics_pb2.WINDOW_1H,
    Window.day: analytics_pb2.WINDOW_24H,
    Window.week: analytics_pb2.WINDOW_7D,
}
_METRIC_TO_PROTO = {
    Metric.tasks_created: analytics_pb2.METRIC_TASKS_CREATED,
    Metric.tasks_completed: analytics_pb2.METRIC_TASKS_COMPLETED,
    Metric.users_registered: analytics_pb2.METRIC_USERS_REGISTERED,
    Metric.requests: analytics_pb2.METRIC_REQUESTS,
}
_INTERVAL_TO_PROTO = {
    Interval.hour: analytics_pb2.INTERVAL_HOUR,
    Interval.day: analytics_pb2.INTERVAL_DAY,
}


class Summary(BaseModel):
    """Headline figures, overall and over the last 24 hours."""

    users_total: int
    users_active_24h: int
    tasks_total: int
    tasks_created_24h: int
    tasks_completed_24h: int
    requests_24h: int
    error_rate_24h: float = Field(description="Share of requests answered 5xx, 0-1")


class EndpointStats(BaseModel):
    """Figures of one route template and method."""

    route: str = Field(description="Route template, e.g. /api/v1/tasks/{id}")
    method: str
    count: int
    error_rate: float = Field(description="Share of requests answered 5xx, 0-1")
    p50_ms: float
    p95_ms: float


class EndpointList(BaseModel):
    """Per-route figures over a window."""

    items: list[EndpointStats]


class Point(BaseModel):
    """One bucket of a time series."""

    t: UtcDatetime = Field(description="Start of the bucket")
    value: float


class Timeseries(BaseModel):
    """A metric bucketed over time."""

    points: list[Point]


def endpoints_request(window: Window) -> analytics_pb2.GetEndpointsRequest:
    """The GetEndpoints RPC message."""
    return analytics_pb2.GetEndpointsRequest(window=_WINDOW_TO_PROTO[window])


def timeseries_request(
    metric: Metric, interval: Interval, start: datetime | None, end: datetime | None
) -> analytics_pb2.GetTimeseriesRequest:
    """The GetTimeseries RPC message; an unset bound takes the service's default."""
    return analytics_pb2.GetTimeseriesRequest(
        metric=_METRIC_TO_PROTO[metric],
        interval=_INTERVAL_TO_PROTO[interval],
        start_time=timestamp_to_proto(start) if start else None,
        end_time=timestamp_to_proto(end) if end else None,
    )


def summary_from_proto(summary: analytics_pb2.Summary) -> Summary:
    """Convert a proto Summary."""
    return Summary(
        users_total=summary.users_total,
        users_active_24h=summary.users_active_24h,
        tasks_total=summary.tasks_total,
        tasks_created_24h=summary.tasks_created_24h,
        tasks_completed_24h=summary.tasks_completed_24h,
        requests_24h=summary.requests_24h,
        error_rate_24h=summary.error_rate_24h,
    )


def endpoint_list_from_proto(response: analytics_pb2.GetEndpointsResponse) -> EndpointList:
    """Convert a GetEndpoints answer."""
    return EndpointList(
        items=[
            EndpointStats(
                route=stats.route,
                method=stats.method,
                count=stats.count,
                error_rate=stats.error_rate,
                p50_ms=stats.p50_ms,
                p95_ms=stats.p95_ms,
            )
            for stats in response.endpoints
        ]
    )


def timeseries_from_proto(response: analytics_pb2.GetTimeseriesResponse) -> Timeseries:
    """Convert a GetTimeseries answer."""
    return Timeseries(
        points=[
            Point(t=datetime_from_proto(point.t), value=point.value) for point in response.points
        ]
    )
