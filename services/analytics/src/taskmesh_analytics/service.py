"""The use cases: the three figures admins ask for, each summed from pre-aggregated buckets.

Every answer reads a bounded number of bucket documents, whatever the history: the summary
fewer than 90 activity buckets and the all-time document, the endpoints 61 minute
buckets (1h), 25 hour buckets (24h) or 169 hour buckets (7d) per route and method, a time
series one bucket per point (at most MAX_SERIES_POINTS). Nothing is cached: an answer shows
everything stored when it is asked.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from taskmesh_analytics.domain import (
    ACTIVE_WINDOW,
    ACTIVITY_GRAINS,
    ROUTE_GRAINS,
    SUMMARY_WINDOW,
    Activity,
    BucketRange,
    Clock,
    EndpointStats,
    Grain,
    Metric,
    Point,
    Summary,
    Viewer,
    Window,
    cover,
    error_rate,
    require_admin,
    series_query,
    utc_now,
    window_ending_at,
)
from taskmesh_analytics.repository import Retention, RollupReader


class AnalyticsService:
    """Answers the figures from the rollups; admins only."""

    def __init__(self, reader: RollupReader, retention: Retention, clock: Clock = utc_now) -> None:
        self._reader = reader
        self._retention = retention
        self._clock = clock

    async def summary(self, viewer: Viewer) -> Summary:
        """Totals since counting began, and the counts of the last 24 hours."""
        require_admin(viewer)
        now = self._clock()
        start, end = window_ending_at(now, SUMMARY_WINDOW)
        recent, totals, active = await asyncio.gather(
            self._reader.activity(cover(start, end, ACTIVITY_GRAINS)),
            self._reader.all_time(),
            self._reader.active_users(now - ACTIVE_WINDOW),
        )
        return Summary(
            users_total=totals[Activity.USERS_REGISTERED] - totals[Activity.USERS_DELETED],
            users_active_24h=active,
            tasks_total=totals[Activity.TASKS_CREATED] - totals[Activity.TASKS_DELETED],
            tasks_created_24h=recent[Activity.TASKS_CREATED],
            tasks_completed_24h=recent[Activity.TASKS_COMPLETED],
            requests_24h=recent[Activity.REQUESTS],
            error_rate_24h=error_rate(recent[Activity.ERRORS], recent[Activity.REQUESTS]),
        )

    async def endpoints(self, viewer: Viewer, window: Window) -> list[EndpointStats]:
        """Per route template and method over the window: count, 5xx share, p50 and p95.

        Busiest first, then by route and method.
        """
        require_admin(viewer)
        start, end = window_ending_at(self._clock(), window.length, window.resolution)
        tallies = await self._reader.routes(cover(start, end, ROUTE_GRAINS))
        stats = [
            EndpointStats(
                route=route,
                method=method,
                count=tally.count,
                error_rate=error_rate(tally.errors, tally.count),
                p50_ms=tally.latency.quantile(0.5),
                p95_ms=tally.latency.quantile(0.95),
            )
            for (route, method), tally in tallies.items()
        ]
        stats.sort(key=lambda item: (-item.count, item.route, item.method))
        return stats

    async def timeseries(
        self,
        viewer: Viewer,
        metric: Metric,
        grain: Grain,
        start: datetime | None,
        end: datetime | None,
    ) -> list[Point]:
        """One point per bucket of `grain` overlapping [start, end); empty buckets are 0."""
        require_admin(viewer)
        query = series_query(
            metric, grain, start, end, now=self._clock(), retention=self._retention.of(grain)
        )
        stored = await self._reader.series(
            BucketRange(query.grain, query.first, query.stop), metric.value
        )
        return [Point(t, float(stored.get(t, 0))) for t in query.starts()]
