"""The figures analytics answers, the time buckets they are kept in, the domain errors.

Nothing here knows gRPC or MongoDB. Every figure is a sum of pre-aggregated buckets: a
bucket is a minute, an hour or a day (UTC) and holds the counts of what happened in it. A
span of time is read as the fewest buckets that tile it exactly (`cover`): whole days in
the middle, whole hours next to them, minutes at the ragged edges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Final

from taskmesh_chassis.errors import PermissionDenied
from taskmesh_chassis.errors import invalid as invalid

Clock = Callable[[], datetime]

MAX_SERIES_POINTS: Final = 1000
"""A time series longer than this is refused: the answer stays small and fast."""
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(3000, 1, 1, tzinfo=UTC)
"""Instants outside [EARLIEST, LATEST) are refused, in queries and in request records."""


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


# --- buckets ------------------------------------------------------------------------------


class Grain(StrEnum):
    """The width of a bucket, as stored."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"

    @property
    def length(self) -> timedelta:
        """How long a bucket of this grain lasts."""
        return _LENGTHS[self]

    def floor(self, moment: datetime) -> datetime:
        """The start of the bucket of this grain holding `moment` (in UTC)."""
        moment = moment.astimezone(UTC)
        if self is Grain.MINUTE:
            return moment.replace(second=0, microsecond=0)
        if self is Grain.HOUR:
            return moment.replace(minute=0, second=0, microsecond=0)
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)

    def ceil(self, moment: datetime) -> datetime:
        """The first bucket start of this grain at or after `moment`."""
        floor = self.floor(moment)
        return floor if floor == moment else floor + self.length


_LENGTHS: Final = {
    Grain.MINUTE: timedelta(minutes=1),
    Grain.HOUR: timedelta(hours=1),
    Grain.DAY: timedelta(days=1),
}

ROUTE_GRAINS: Final = (Grain.MINUTE, Grain.HOUR)
"""The grains per-route figures are kept in (a week is 168 hours: days would gain little)."""
ACTIVITY_GRAINS: Final = (Grain.MINUTE, Grain.HOUR, Grain.DAY)
"""The grains the suite-wide counts are kept in (day buckets feed long time series)."""


@dataclass(frozen=True, slots=True)
class BucketRange:
    """The buckets of one grain whose start is in [first, stop)."""

    grain: Grain
    first: datetime
    stop: datetime


def cover(start: datetime, end: datetime, grains: Sequence[Grain]) -> list[BucketRange]:
    """The fewest buckets of `grains` (finest first) that tile [start, end) exactly.

    `start` and `end` must fall on boundaries of the finest grain. The coarsest grain takes
    the whole buckets it can; what is left at each side is covered by the finer ones.
    """
    if start >= end:
        return []
    finest, coarser = grains[0], grains[1:]
    if finest.floor(start) != start or finest.floor(end) != end:
        raise ValueError("cover needs bounds on the finest grain's boundaries")
    if not coarser:
        return [BucketRange(finest, start, end)]
    coarsest = coarser[-1]
    finer = grains[:-1]
    first, stop = coarsest.ceil(start), coarsest.floor(end)
    if first >= stop:
        return cover(start, end, finer)
    return [
        *cover(start, first, finer),
        BucketRange(coarsest, first, stop),
        *cover(stop, end, finer),
    ]


# --- what is counted ------------------------------------------------------------------------


class Activity(StrEnum):
    """A suite-wide count kept per bucket (and over all time), by its stored field name."""

    REQUESTS = "requests"
    ERRORS = "errors"
    """Requests answered 5xx."""
    TASKS_CREATED = "tasks_created"
    TASKS_COMPLETED = "tasks_completed"
    TASKS_DELETED = "tasks_deleted"
    USERS_REGISTERED = "users_registered"
    USERS_DELETED = "users_deleted"


class Metric(Enum):
    """A quantity a time series shows, and the count it is."""

    TASKS_CREATED = Activity.TASKS_CREATED
    TASKS_COMPLETED = Activity.TASKS_COMPLETED
    USERS_REGISTERED = Activity.USERS_REGISTERED
    REQUESTS = Activity.REQUESTS


class Window(Enum):
    """A span of time ending now, over which per-route figures are given."""

    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"

    @property
    def length(self) -> timedelta:
        """How long the window is."""
        return _WINDOW_LENGTHS[self]

    @property
    def resolution(self) -> Grain:
        """The grain its edges fall on: minutes for the hour, hours for longer windows.

        A day's or a week's per-route figures are then whole hour buckets (25 or 169 per
        route and method) rather than hours plus up to 120 minute buckets at the edges.
        """
        return Grain.MINUTE if self is Window.HOUR else Grain.HOUR


_WINDOW_LENGTHS: Final = {
    Window.HOUR: timedelta(hours=1),
    Window.DAY: timedelta(hours=24),
    Window.WEEK: timedelta(days=7),
}

SUMMARY_WINDOW: Final = timedelta(hours=24)
ACTIVE_WINDOW: Final = timedelta(hours=24)
"""A user is active if they made a request within this span."""


def window_ending_at(
    now: datetime, length: timedelta, resolution: Grain = Grain.MINUTE
) -> tuple[datetime, datetime]:
    """The [start, end) on `resolution`'s boundaries covering the `length` before `now`.

    Buckets are the resolution: the window is the buckets from the one holding
    `now - length` to the current one, so it covers the span exactly and less than one
    bucket more.
    """
    return resolution.floor(now - length), resolution.floor(now) + resolution.length


def error_rate(errors: int, requests: int) -> float:
    """The share of requests answered 5xx, 0-1 (0 when there were none)."""
    return errors / requests if requests else 0.0


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline figures: totals since counting began, and the last 24 hours."""

    users_total: int
    users_active_24h: int
    tasks_total: int
    tasks_created_24h: int
    tasks_completed_24h: int
    requests_24h: int
    error_rate_24h: float


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """The figures of one route template and method over a window."""

    route: str
    method: str
    count: int
    error_rate: float
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True, slots=True)
class Point:
    """One bucket of a time series: its start and its count."""

    t: datetime
    value: float


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """A checked time-series request: the metric, and the buckets [first, stop) of `grain`."""

    metric: Metric
    grain: Grain
    first: datetime
    stop: datetime

    def starts(self) -> list[datetime]:
        """The start of every bucket of the series, in order."""
        starts = []
        t = self.first
        while t < self.stop:
            starts.append(t)
            t += self.grain.length
        return starts


DEFAULT_SERIES_SPAN: Final = {Grain.HOUR: timedelta(days=1), Grain.DAY: timedelta(days=30)}


def series_query(
    metric: Metric,
    grain: Grain,
    start: datetime | None,
    end: datetime | None,
    *,
    now: datetime,
    retention: timedelta,
) -> SeriesQuery:
    """Check a time-series request; InvalidArgument naming the offending parameter.

    `end` defaults to now, `start` to a day (hour buckets) or 30 days (day buckets) before
    `end`. The series has a point for every bucket that overlaps [start, end). A range
    reaching further back than the grain's retention is refused rather than answered with
    zeros for buckets that expired, and so is one of more than MAX_SERIES_POINTS points.
    """
    end = now if end is None else end
    start = end - DEFAULT_SERIES_SPAN[grain] if start is None else start
    for name, moment in (("from", start), ("to", end)):
        if not EARLIEST <= moment < LATEST:
            raise invalid(("query", name), "must be between 1970 and 3000")
    if start >= end:
        raise invalid(("query", "from"), "from must be earlier than to")
    if start < now - retention:
        raise invalid(
            ("query", "from"),
            f"{grain.value} buckets are kept {retention.days} days; ask for a later from",
        )
    first = grain.floor(start)
    points = -(-(end - first) // grain.length)
    if points > MAX_SERIES_POINTS:
        raise invalid(
            ("query", "from"),
            f"the range holds {points} {grain.value}s; at most {MAX_SERIES_POINTS} points",
        )
    return SeriesQuery(metric, grain, first, first + points * grain.length)


# --- who may ask --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking, as their verified token says."""

    user_id: str
    is_admin: bool


class AdminsOnly(PermissionDenied):
    """Analytics are for admins."""

    default_message = "only admins may read analytics"


def require_admin(viewer: Viewer) -> None:
    """AdminsOnly unless the viewer is an admin."""
    if not viewer.is_admin:
        raise AdminsOnly()
