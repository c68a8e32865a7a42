"""The gRPC edge of the analytics service: protobuf messages in, use cases, messages out.

The caller is the one the verified access token names (taskmesh_chassis.identity); every RPC
is for admins, checked from the token's role before the request's values are looked at.
Domain errors become their gRPC status in the chassis' error scope.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from taskmesh_chassis.identity import require_caller

from taskmesh_analytics.domain import (
    EARLIEST,
    LATEST,
    Grain,
    Metric,
    Viewer,
    Window,
    invalid,
    require_admin,
)
from taskmesh_analytics.service import AnalyticsService

SERVICE_NAME: str = analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name

_WINDOWS: Final[dict[int, Window]] = {
    analytics_pb2.WINDOW_UNSPECIFIED: Window.DAY,
    analytics_pb2.WINDOW_1H: Window.HOUR,
    analytics_pb2.WINDOW_24H: Window.DAY,
    analytics_pb2.WINDOW_7D: Window.WEEK,
}
_METRICS: Final[dict[int, Metric]] = {
    analytics_pb2.METRIC_TASKS_CREATED: Metric.TASKS_CREATED,
    analytics_pb2.METRIC_TASKS_COMPLETED: Metric.TASKS_COMPLETED,
    analytics_pb2.METRIC_USERS_REGISTERED: Metric.USERS_REGISTERED,
    analytics_pb2.METRIC_REQUESTS: Metric.REQUESTS,
}
_EARLIEST_S: Final = int(EARLIEST.timestamp())
_LATEST_S: Final = int(LATEST.timestamp())
_INTERVALS: Final[dict[int, Grain]] = {
    analytics_pb2.INTERVAL_UNSPECIFIED: Grain.HOUR,
    analytics_pb2.INTERVAL_HOUR: Grain.HOUR,
    analytics_pb2.INTERVAL_DAY: Grain.DAY,
}


def current_viewer() -> Viewer:
    """The verified caller of this RPC, who must be an admin (Unauthenticated if none)."""
    caller = require_caller()
    viewer = Viewer(user_id=caller.user_id, is_admin=caller.is_admin)
    require_admin(viewer)
    return viewer


def timestamp(moment: datetime) -> Timestamp:
    """The protobuf Timestamp of a moment."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def window_from(value: int) -> Window:
    """The window a request names; InvalidArgument for a value the proto does not define."""
    window = _WINDOWS.get(value)
    if window is None:
        raise invalid(("query", "window"), "must be 1h, 24h or 7d")
    return window


def metric_from(value: int) -> Metric:
    """The metric a request names; InvalidArgument when unset or unknown."""
    metric = _METRICS.get(value)
    if metric is None:
        raise invalid(
            ("query", "metric"),
            "must be tasks_created, tasks_completed, users_registered or requests",
        )
    return metric


def grain_from(value: int) -> Grain:
    """The bucket width a request names; InvalidArgument for a value the proto does not define."""
    grain = _INTERVALS.get(value)
    if grain is None:
        raise invalid(("query", "interval"), "must be hour or day")
    return grain


def instant(request: analytics_pb2.GetTimeseriesRequest, field: str, name: str) -> datetime | None:
    """A Timestamp field of the request as an aware datetime, or None when unset.

    InvalidArgument (naming the HTTP parameter `name`) outside 1970-3000, before any
    conversion that a Timestamp beyond the year 9999 would break.
    """
    if not request.HasField(field):
        return None
    stamp: Timestamp = getattr(request, field)
    if not _EARLIEST_S <= stamp.seconds < _LATEST_S or not 0 <= stamp.nanos < 1_000_000_000:
        raise invalid(("query", name), "must be between 1970 and 3000")
    moment: datetime = stamp.ToDatetime(tzinfo=UTC)
    return moment


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):  # type: ignore[misc]
    """Serves taskmesh.analytics.v1.AnalyticsService."""

    def __init__(self, service: AnalyticsService) -> None:
        self._service = service

    async def GetSummary(
        self, request: analytics_pb2.GetSummaryRequest, context: Any
    ) -> analytics_pb2.Summary:
        """Return the headline counts of the last 24 hours and overall (admins)."""
        summary = await self._service.summary(current_viewer())
        return analytics_pb2.Summary(
            users_total=summary.users_total,
            users_active_24h=summary.users_active_24h,
            tasks_total=summary.tasks_total,
            tasks_created_24h=summary.tasks_created_24h,
            tasks_completed_24h=summary.tasks_completed_24h,
            requests_24h=summary.requests_24h,
            error_rate_24h=summary.error_rate_24h,
        )

    async def GetEndpoints(
        self, request: analytics_pb2.GetEndpointsRequest, context: Any
    ) -> analytics_pb2.GetEndpointsResponse:
        """Return per-route request figures over a window (admins)."""
        viewer = current_viewer()
        stats = await self._service.endpoints(viewer, window_from(request.window))
        return analytics_pb2.GetEndpointsResponse(
            endpoints=[
                analytics_pb2.EndpointStats(
                    route=item.route,
                    method=item.method,
                    count=item.count,
                    error_rate=item.error_rate,
                    p50_ms=item.p50_ms,
                    p95_ms=item.p95_ms,
                )
                for item in stats
            ]
        )

    async def GetTimeseries(
        self, request: analytics_pb2.GetTimeseriesRequest, context: Any
    ) -> analytics_pb2.GetTimeseriesResponse:
        """Return one metric bucketed by hour or day between two instants (admins)."""
        viewer = current_viewer()
        points = await self._service.timeseries(
            viewer,
            metric_from(request.metric),
            grain_from(request.interval),
            instant(request, "start_time", "from"),
            instant(request, "end_time", "to"),
        )
        return analytics_pb2.GetTimeseriesResponse(
            points=[
                analytics_pb2.Point(t=timestamp(point.t), value=point.value) for point in points
            ]
        )
