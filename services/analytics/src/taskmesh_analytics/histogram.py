"""A mergeable latency histogram: fixed log-spaced buckets, counts kept sparse.

Bucket 0 holds durations under LOWEST_MS; bucket i (1 <= i <= TOP) holds
[LOWEST_MS * GROWTH**(i-1), LOWEST_MS * GROWTH**i); bucket TOP + 1 everything longer (about
68 s and up). Every histogram has the same boundaries, so two merge by adding counts, and a
window's histogram is the sum of its buckets' — never a sort of raw samples.

A quantile is found in the bucket holding its rank and interpolated geometrically inside it,
so it is within one bucket of the exact sample quantile: a factor GROWTH (25 %) either way
at worst, about half that typically. Durations over the last boundary are reported as that
boundary.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Final

GROWTH: Final = 1.25
LOWEST_MS: Final = 0.5
HIGHEST_MS: Final = 60_000.0
TOP: Final = math.ceil(math.log(HIGHEST_MS / LOWEST_MS) / math.log(GROWTH))
"""The last bounded bucket; its upper bound is the first at or above HIGHEST_MS."""
OVERFLOW: Final = TOP + 1


def bucket_of(duration_ms: float) -> int:
    """The index of the bucket holding a duration (in milliseconds, >= 0)."""
    if duration_ms < LOWEST_MS:
        return 0
    index = math.floor(math.log(duration_ms / LOWEST_MS) / math.log(GROWTH)) + 1
    # Floating point may put a value that is exactly a boundary one bucket low or high.
    if duration_ms < lower_bound(index):
        index -= 1
    elif index <= TOP and duration_ms >= upper_bound(index):
        index += 1
    return min(index, OVERFLOW)


def lower_bound(index: int) -> float:
    """The smallest duration bucket `index` holds."""
    return 0.0 if index == 0 else LOWEST_MS * GROWTH ** (index - 1)


def upper_bound(index: int) -> float:
    """The first duration bucket `index` (not the overflow) no longer holds."""
    return LOWEST_MS * GROWTH**index


class LatencyHistogram:
    """Counts of durations per bucket; only non-empty buckets are kept."""

    def __init__(self, counts: Mapping[int, int] | None = None) -> None:
        self._counts: Counter[int] = Counter()
        if counts:
            self.merge(counts)

    @classmethod
    def of(cls, durations_ms: Iterable[float]) -> LatencyHistogram:
        """The histogram of some durations."""
        histogram = cls()
        for duration in durations_ms:
            histogram.add(duration)
        return histogram

    @property
    def counts(self) -> dict[int, int]:
        """The non-empty buckets: index -> count."""
        return dict(self._counts)

    @property
    def total(self) -> int:
        """How many durations it holds."""
        return sum(self._counts.values())

    def add(self, duration_ms: float, count: int = 1) -> None:
        """Count a duration `count` times."""
        self._counts[bucket_of(duration_ms)] += count

    def merge(self, counts: Mapping[int, int]) -> None:
        """Add another histogram's bucket counts to this one."""
        for index, count in counts.items():
            if count:
                self._counts[index] += count

    def quantile(self, q: float) -> float:
        """The q-quantile (0 < q <= 1) in milliseconds; 0 when empty.

        The bucket holding the sample of rank ceil(q * total) is found from the cumulative
        counts; the rank's position among that bucket's samples (each taken at the middle of
        an equal share of the bucket) places it between the bucket's bounds, on a log scale
        (linearly in the first bucket, which starts at 0).
        """
        if not 0 < q <= 1:
            raise ValueError("q must be in (0, 1]")
        total = self.total
        if total == 0:
            return 0.0
        rank = max(1, math.ceil(q * total))
        below = 0
        for index in sorted(self._counts):
            count = self._counts[index]
            if below + count >= rank:
                return _interpolate(index, (rank - below - 0.5) / count)
            below += count
        raise AssertionError("rank beyond the histogram's total")


def _interpolate(index: int, fraction: float) -> float:
    if index == OVERFLOW:
        return lower_bound(OVERFLOW)
    low, high = lower_bound(index), upper_bound(index)
    if index == 0:
        return high * fraction
    return float(low * (high / low) ** fraction)
