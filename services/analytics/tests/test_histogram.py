"""Unit tests of the latency histogram: bucket keys, merging, quantile accuracy."""

from __future__ import annotations

import math
import random

import pytest
from taskmesh_analytics.histogram import (
    GROWTH,
    HIGHEST_MS,
    LOWEST_MS,
    OVERFLOW,
    TOP,
    LatencyHistogram,
    bucket_of,
    lower_bound,
    upper_bound,
)


def exact_quantile(samples: list[float], q: float) -> float:
    """The sample of rank ceil(q * n) (the nearest-rank definition)."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_the_buckets_span_half_a_millisecond_to_a_minute_in_25_percent_steps() -> None:
    assert (LOWEST_MS, GROWTH) == (0.5, 1.25)
    assert upper_bound(TOP - 1) < HIGHEST_MS <= upper_bound(TOP)
    assert all(
        upper_bound(index) == pytest.approx(lower_bound(index) * GROWTH)
        for index in range(1, TOP + 1)
    )


@pytest.mark.parametrize(
    ("duration_ms", "index"),
    [
        (0.0, 0),
        (0.49, 0),
        (0.5, 1),
        (0.62, 1),
        (0.625, 2),
        (1.0, 4),
        (HIGHEST_MS, TOP),
        (HIGHEST_MS * 10, OVERFLOW),
    ],
)
def test_a_duration_falls_in_the_bucket_whose_bounds_hold_it(
    duration_ms: float, index: int
) -> None:
    assert bucket_of(duration_ms) == index


def test_every_boundary_starts_its_own_bucket() -> None:
    for index in range(1, TOP + 1):
        assert bucket_of(lower_bound(index)) == index
        assert bucket_of(math.nextafter(lower_bound(index), 0)) == index - 1


def test_merged_histograms_equal_the_histogram_of_all_samples() -> None:
    rng = random.Random(7)
    first = [rng.lognormvariate(3, 1) for _ in range(500)]
    second = [rng.lognormvariate(5, 0.5) for _ in range(300)]

    merged = LatencyHistogram.of(first)
    merged.merge(LatencyHistogram.of(second).counts)

    assert merged.counts == LatencyHistogram.of(first + second).counts
    assert merged.total == 800


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_quantiles_are_within_one_bucket_of_the_exact_sample_quantile(seed: int, q: float) -> None:
    rng = random.Random(seed)
    samples = [rng.lognormvariate(rng.uniform(0, 6), rng.uniform(0.2, 1.5)) for _ in range(2000)]

    estimate = LatencyHistogram.of(samples).quantile(q)

    exact = exact_quantile(samples, q)
    assert exact / GROWTH <= estimate <= exact * GROWTH


def test_quantiles_of_merged_buckets_match_those_of_the_whole() -> None:
    rng = random.Random(11)
    minutes = [[rng.expovariate(1 / 40) for _ in range(rng.randint(1, 60))] for _ in range(120)]
    merged = LatencyHistogram()
    for minute in minutes:
        merged.merge(LatencyHistogram.of(minute).counts)
    everything = [sample for minute in minutes for sample in minute]

    for q in (0.5, 0.95):
        exact = exact_quantile(everything, q)
        assert exact / GROWTH <= merged.quantile(q) <= exact * GROWTH


def test_a_histogram_of_one_value_answers_within_its_bucket() -> None:
    histogram = LatencyHistogram.of([42.0])
    index = bucket_of(42.0)

    assert lower_bound(index) <= histogram.quantile(0.5) < upper_bound(index)
    assert histogram.quantile(0.5) == histogram.quantile(0.95)


def test_durations_below_the_first_boundary_interpolate_from_zero() -> None:
    histogram = LatencyHistogram.of([0.1] * 10)

    assert 0 < histogram.quantile(0.5) < LOWEST_MS


def test_overflowing_durations_are_reported_as_the_last_boundary() -> None:
    assert LatencyHistogram.of([3_600_000.0]).quantile(0.95) == lower_bound(OVERFLOW)


def test_an_empty_histogram_answers_zero() -> None:
    assert LatencyHistogram().quantile(0.95) == 0.0


def test_a_quantile_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError):
        LatencyHistogram.of([1.0]).quantile(0)
