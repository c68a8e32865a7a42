from __future__ import annotations

from taskmesh_chassis.events.outbox import SequenceClock


class FrozenClock:
    """A wall clock that only moves when told to."""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us


def test_sequence_follows_the_clock() -> None:
    wall = FrozenClock(1_000)
    clock = SequenceClock(wall)
    first = clock.next()
    wall.now_us = 5_000

    assert (first, clock.next()) == (1_000, 5_000)


def test_sequence_increases_within_one_microsecond() -> None:
    clock = SequenceClock(FrozenClock(1_000))

    assert [clock.next() for _ in range(3)] == [1_000, 1_001, 1_002]


def test_sequence_never_goes_back_when_the_clock_does() -> None:
    wall = FrozenClock(1_000)
    clock = SequenceClock(wall)
    clock.next()
    wall.now_us = 400

    assert clock.next() == 1_001
