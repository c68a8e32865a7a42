"""`/api/v1/analytics`: product and API figures (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime
from taskmesh.analytics.v1 import analytics_pb2

from taskmesh_gateway.dependencies import AdminUser, Clients
from taskmesh_gateway.schemas.analytics import (
    EndpointList,
    Interval,
    Metric,
    Summary,
    Timeseries,
    Window,
    endpoint_list_from_proto,
    endpoints_request,
    summary_from_proto,
    timeseries_from_proto,
    timeseries_request,
)
from taskmesh_gateway.schemas.problems import problem_responses

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])


@router.get("/summary", responses=problem_responses(401, 403))
async def read_summary(caller: AdminUser, clients: Clients) -> Summary:
    """Return headline counts, overall and over the last 24 hours."""
    return summary_from_proto(await clients.analytics.GetSummary(analytics_pb2.GetSummaryRequest()))


@router.get("/endpoints", responses=problem_responses(401, 403, 422))
async def read_endpoints(
    caller: AdminUser,
    clients: Clients,
    window: Annotated[Window, Query(description="Span of time ending now")] = Window.day,
) -> EndpointList:
    """Return request count, error rate and latency per route template and method."""
    return endpoint_list_from_proto(await clients.analytics.GetEndpoints(endpoints_request(window)))


@router.get("/timeseries", responses=problem_responses(401, 403, 422))
async def read_timeseries(
    caller: AdminUser,
    clients: Clients,
    metric: Metric,
    interval: Interval = Interval.hour,
    start: Annotated[
        AwareDatetime | None, Query(alias="from", description="First instant (RFC 3339)")
    ] = None,
    end: Annotated[
        AwareDatetime | None, Query(alias="to", description="Last instant (RFC 3339); now if unset")
    ] = None,
) -> Timeseries:
    """Return one metric bucketed by hour or day."""
    _check_range(start, end)
    reply = await clients.analytics.GetTimeseries(timeseries_request(metric, interval, start, end))
    return timeseries_from_proto(reply)


def _check_range(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start >= end:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "from"),
                    "msg": "from must be earlier than to",
                    "input": start.isoformat(),
                }
            ]
        )
