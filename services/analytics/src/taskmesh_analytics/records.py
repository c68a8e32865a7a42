"""The gateway's request records, checked and summed into per-minute tallies.

A batch of records (one `gateway.request_records` event) becomes one `RequestTally`: per
(minute, route template, method) a count, a 5xx count and a latency histogram; per minute the
suite-wide request and 5xx counts; per user the latest request. The repository turns a tally
into one `$inc` per bucket, so a batch costs a write per distinct bucket, not per record.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from taskmesh_analytics.domain import EARLIEST, LATEST, Activity, Grain
from taskmesh_analytics.histogram import LatencyHistogram

MAX_ROUTE_CHARS: Final = 256
MAX_USER_ID_CHARS: Final = 64
_METHOD = re.compile(r"[A-Z]{1,16}")


class InvalidRecord(ValueError):
    """A request record no gateway of ours would send."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answered HTTP request, as the gateway recorded it."""

    route: str
    """The route template, e.g. `/api/v1/tasks/{id}`; "" when no route matched."""
    method: str
    status: int
    duration_ms: float
    time: datetime
    user_id: str
    """"" for an anonymous request."""

    def check(self) -> RequestRecord:
        """The record itself if every field is plausible; else InvalidRecord naming a field.

        Route and method become stored values and bucket keys: a route is a path template (or
        ""), a method an upper-case token, so their variety stays that of the gateway's routes.
        """
        if self.route and (not self.route.startswith("/") or len(self.route) > MAX_ROUTE_CHARS):
            raise InvalidRecord("route is not a path template")
        if not _METHOD.fullmatch(self.method):
            raise InvalidRecord("method is not an upper-case token")
        if not 100 <= self.status <= 599:
            raise InvalidRecord("status is not an HTTP status")
        if not (math.isfinite(self.duration_ms) and self.duration_ms >= 0):
            raise InvalidRecord("duration_ms is not a duration")
        if not EARLIEST <= self.time < LATEST:
            raise InvalidRecord("time is not between 1970 and 3000")
        if len(self.user_id) > MAX_USER_ID_CHARS:
            raise InvalidRecord("user_id is too long")
        return self

    @property
    def is_server_error(self) -> bool:
        """Whether the request was answered 5xx."""
        return self.status >= 500


RouteKey = tuple[datetime, str, str]
"""(minute start, route template, method)."""


@dataclass(slots=True)
class RouteTally:
    """The requests of one route and method in one bucket."""

    count: int = 0
    errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def add(self, record: RequestRecord) -> None:
        """Count one request."""
        self.count += 1
        self.errors += int(record.is_server_error)
        self.latency.add(record.duration_ms)

    def merge(self, other: RouteTally) -> None:
        """Add another tally of the same route and method."""
        self.count += other.count
        self.errors += other.errors
        self.latency.merge(other.latency.counts)


@dataclass(slots=True)
class RequestTally:
    """A batch of records, summed per minute."""

    routes: dict[RouteKey, RouteTally] = field(default_factory=dict)
    activity: dict[datetime, Counter[Activity]] = field(default_factory=dict)
    last_seen: dict[str, datetime] = field(default_factory=dict)
    """Per signed-in user, the time of their latest request in the batch."""

    def add(self, record: RequestRecord) -> None:
        """Count one checked record."""
        minute = Grain.MINUTE.floor(record.time)
        key = (minute, record.route, record.method)
        self.routes.setdefault(key, RouteTally()).add(record)
        counts = self.activity.setdefault(minute, Counter())
        counts[Activity.REQUESTS] += 1
        counts[Activity.ERRORS] += int(record.is_server_error)
        if record.user_id:
            seen = self.last_seen.get(record.user_id)
            if seen is None or record.time > seen:
                self.last_seen[record.user_id] = record.time


def tally(records: Iterable[RequestRecord]) -> RequestTally:
    """The tally of a batch; InvalidRecord if any record is implausible (the batch is refused)."""
    result = RequestTally()
    for record in records:
        result.add(record.check())
    return result
