"""Unit tests of the bucket arithmetic, the windows, the time-series checks and the records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from taskmesh_analytics.domain import (
    ACTIVITY_GRAINS,
    MAX_SERIES_POINTS,
    ROUTE_GRAINS,
    Activity,
    BucketRange,
    Grain,
    Metric,
    Window,
    cover,
    error_rate,
    series_query,
    window_ending_at,
)
from taskmesh_analytics.records import InvalidRecord, RequestRecord, tally
from taskmesh_chassis.errors import InvalidArgument

MINUTE, HOUR, DAY = Grain.MINUTE, Grain.HOUR, Grain.DAY
NOW = datetime(2026, 11, 28, 9, 42, 14, 123000, tzinfo=UTC)
RETENTION = timedelta(days=90)


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def covered_minutes(ranges: list[BucketRange]) -> int:
    return sum((item.stop - item.first) // timedelta(minutes=1) for item in ranges)


# --- buckets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grain", "floor"),
    [
        (MINUTE, datetime(2026, 11, 28, 9, 42, tzinfo=UTC)),
        (HOUR, datetime(2026, 11, 28, 9, tzinfo=UTC)),
        (DAY, datetime(2026, 11, 28, tzinfo=UTC)),
    ],
)
def test_a_moment_belongs_to_the_bucket_starting_at_its_floor(
    grain: Grain, floor: datetime
) -> None:
    assert grain.floor(NOW) == floor
    assert grain.ceil(NOW) == floor + grain.length
    assert grain.ceil(floor) == floor


def test_a_moment_in_another_time_zone_is_bucketed_in_utc() -> None:
    paris = NOW.astimezone(ZoneInfo("Europe/Paris"))

    assert DAY.floor(paris) == datetime(2026, 11, 28, tzinfo=UTC)


def test_a_span_inside_one_hour_is_read_in_minutes() -> None:
    assert cover(at(28, 9, 10), at(28, 9, 40), ACTIVITY_GRAINS) == [
        BucketRange(MINUTE, at(28, 9, 10), at(28, 9, 40))
    ]


def test_a_day_long_span_is_whole_hours_with_minutes_at_the_edges() -> None:
    start, end = at(27, 9, 43), at(28, 9, 43)

    ranges = cover(start, end, ACTIVITY_GRAINS)

    assert ranges == [
        BucketRange(MINUTE, at(27, 9, 43), at(27, 10)),
        BucketRange(HOUR, at(27, 10), at(28, 9)),
        BucketRange(MINUTE, at(28, 9), at(28, 9, 43)),
    ]
    assert covered_minutes(ranges) == 24 * 60


def test_a_week_uses_whole_days_when_the_grains_include_days() -> None:
    ranges = cover(at(21, 9, 43), at(28, 9, 43), ACTIVITY_GRAINS)

    assert BucketRange(DAY, at(22), at(28)) in ranges
    assert covered_minutes(ranges) == 7 * 24 * 60
    assert [item.grain for item in ranges] == [MINUTE, HOUR, DAY, HOUR, MINUTE]


def test_a_week_of_route_buckets_is_hours_and_edge_minutes() -> None:
    ranges = cover(at(21, 9, 43), at(28, 9, 43), ROUTE_GRAINS)

    assert [item.grain for item in ranges] == [MINUTE, HOUR, MINUTE]
    assert ranges[1] == BucketRange(HOUR, at(21, 10), at(28, 9))
    assert covered_minutes(ranges) == 7 * 24 * 60


def test_an_aligned_span_needs_no_finer_buckets() -> None:
    assert cover(at(27), at(28), ACTIVITY_GRAINS) == [BucketRange(DAY, at(27), at(28))]


def test_cover_refuses_bounds_between_minutes() -> None:
    with pytest.raises(ValueError):
        cover(NOW, NOW + timedelta(hours=1), ACTIVITY_GRAINS)


def test_a_window_runs_from_the_bucket_of_its_start_to_the_current_one() -> None:
    start, end = window_ending_at(NOW, timedelta(hours=1))

    assert start == datetime(2026, 11, 28, 8, 42, tzinfo=UTC)
    assert end == datetime(2026, 11, 28, 9, 43, tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "grain", "buckets"),
    [(Window.HOUR, MINUTE, 61), (Window.DAY, HOUR, 25), (Window.WEEK, HOUR, 169)],
)
def test_endpoint_windows_read_one_grain_of_whole_buckets(
    window: Window, grain: Grain, buckets: int
) -> None:
    start, end = window_ending_at(NOW, window.length, window.resolution)

    assert cover(start, end, ROUTE_GRAINS) == [BucketRange(grain, start, end)]
    assert (end - start) // grain.length == buckets
    assert (start, end) == (grain.floor(NOW - window.length), grain.floor(NOW) + grain.length)


def test_the_error_rate_is_the_5xx_share_and_zero_without_requests() -> None:
    assert error_rate(1, 40) == 0.025
    assert error_rate(0, 0) == 0.0


# --- time series ----------------------------------------------------------------------------


def test_a_series_has_a_point_for_every_bucket_overlapping_the_range() -> None:
    query = series_query(
        Metric.REQUESTS, HOUR, at(28, 6, 30), at(28, 9), now=NOW, retention=RETENTION
    )

    assert query.starts() == [at(28, 6), at(28, 7), at(28, 8)]
    assert Metric.REQUESTS.value is Activity.REQUESTS


def test_a_series_defaults_to_the_day_before_now_in_hours() -> None:
    query = series_query(Metric.TASKS_CREATED, HOUR, None, None, now=NOW, retention=RETENTION)

    starts = query.starts()
    assert (starts[0], starts[-1], len(starts)) == (at(27, 9), at(28, 9), 25)


def test_a_day_series_defaults_to_thirty_days() -> None:
    query = series_query(Metric.TASKS_CREATED, DAY, None, None, now=NOW, retention=RETENTION)

    assert len(query.starts()) == 31
    assert query.starts()[-1] == at(28)


def test_a_series_of_more_than_the_maximum_points_is_refused() -> None:
    end = at(28)
    allowed = series_query(
        Metric.REQUESTS,
        HOUR,
        end - timedelta(hours=MAX_SERIES_POINTS),
        end,
        now=NOW,
        retention=RETENTION,
    )
    assert len(allowed.starts()) == MAX_SERIES_POINTS

    with pytest.raises(InvalidArgument) as raised:
        series_query(
            Metric.REQUESTS,
            HOUR,
            end - timedelta(hours=MAX_SERIES_POINTS + 1),
            end,
            now=NOW,
            retention=RETENTION,
        )
    assert raised.value.errors[0].loc == ("query", "from")


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (at(28, 9), at(28, 8)),
        (at(28, 9), at(28, 9)),
        (datetime(1960, 1, 1, tzinfo=UTC), at(28)),
        (at(28), datetime(3001, 1, 1, tzinfo=UTC)),
    ],
)
def test_an_empty_or_implausible_range_is_refused(start: datetime, end: datetime) -> None:
    with pytest.raises(InvalidArgument):
        series_query(Metric.REQUESTS, DAY, start, end, now=NOW, retention=timedelta(days=40000))


def test_a_range_reaching_past_the_retention_is_refused_rather_than_zero() -> None:
    with pytest.raises(InvalidArgument) as raised:
        series_query(
            Metric.REQUESTS,
            HOUR,
            NOW - RETENTION - timedelta(hours=1),
            NOW - RETENTION + timedelta(hours=5),
            now=NOW,
            retention=RETENTION,
        )

    assert "90 days" in raised.value.errors[0].msg


# --- request records ------------------------------------------------------------------------


def record(**fields: object) -> RequestRecord:
    values: dict[str, object] = {
        "route": "/api/v1/tasks/{id}",
        "method": "GET",
        "status": 200,
        "duration_ms": 10.0,
        "time": NOW,
        "user_id": "",
    }
    values.update(fields)
    return RequestRecord(**values)  # type: ignore[arg-type]


def test_a_batch_is_tallied_per_minute_route_and_method() -> None:
    later = NOW + timedelta(minutes=1)
    result = tally(
        [
            record(),
            record(status=503, duration_ms=900.0),
            record(method="PATCH"),
            record(time=later, user_id="u1"),
            record(route="", status=404, user_id="u1"),
        ]
    )

    minute = MINUTE.floor(NOW)
    assert set(result.routes) == {
        (minute, "/api/v1/tasks/{id}", "GET"),
        (minute, "/api/v1/tasks/{id}", "PATCH"),
        (minute, "", "GET"),
        (MINUTE.floor(later), "/api/v1/tasks/{id}", "GET"),
    }
    busiest = result.routes[(minute, "/api/v1/tasks/{id}", "GET")]
    assert (busiest.count, busiest.errors, busiest.latency.total) == (2, 1, 2)
    assert result.activity[minute] == {Activity.REQUESTS: 4, Activity.ERRORS: 1}
    assert result.last_seen == {"u1": later}


@pytest.mark.parametrize(
    "fields",
    [
        {"route": "api/v1/tasks"},
        {"route": "/" + "x" * 300},
        {"method": "get"},
        {"method": "GET /"},
        {"status": 99},
        {"status": 600},
        {"duration_ms": -1.0},
        {"duration_ms": float("nan")},
        {"time": datetime(1969, 12, 31, tzinfo=UTC)},
        {"user_id": "u" * 65},
    ],
)
def test_an_implausible_record_refuses_the_batch(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidRecord):
        tally([record(), record(**fields)])
