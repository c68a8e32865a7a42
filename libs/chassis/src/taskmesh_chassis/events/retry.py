"""The retry policy of a consumer: how often a failing event is retried, and after what wait."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after `delay_s`; it will be attempt number `attempt`."""

    delay_s: float
    attempt: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop retrying: the event goes to the dead-letter queue after `attempts` attempts."""

    attempts: int


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The wait before each retry; an event is attempted `len(delays_s) + 1` times in all.

    Each distinct delay is a retry queue of its own (the broker holds the message for that
    long, then routes it back), so delays are whole milliseconds and few.
    """

    delays_s: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0)

    def __post_init__(self) -> None:
        if any(delay < 0.001 for delay in self.delays_s):
            raise ValueError("retry delays must be at least one millisecond")

    @classmethod
    def exponential(
        cls, *, max_attempts: int, first_delay_s: float, factor: float = 4.0, max_delay_s: float
    ) -> RetryPolicy:
        """A policy of `max_attempts` attempts whose waits grow by `factor`, capped."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        delays = tuple(
            min(max_delay_s, first_delay_s * factor**retry) for retry in range(max_attempts - 1)
        )
        return cls(delays_s=delays)

    @property
    def max_attempts(self) -> int:
        """How many times an event is handled before it is dead-lettered."""
        return len(self.delays_s) + 1

    @property
    def distinct_delays_ms(self) -> tuple[int, ...]:
        """The retry queues' message TTLs, in milliseconds, ascending."""
        return tuple(sorted({delay_ms(delay) for delay in self.delays_s}))

    def after_failure(self, failed_attempts: int) -> Retry | GiveUp:
        """Decide what follows the `failed_attempts`-th failed attempt (counting from 1)."""
        if failed_attempts < 1:
            raise ValueError("failed_attempts counts from 1")
        if failed_attempts >= self.max_attempts:
            return GiveUp(attempts=failed_attempts)
        return Retry(delay_s=self.delays_s[failed_attempts - 1], attempt=failed_attempts + 1)


def delay_ms(delay_s: float) -> int:
    """A delay in whole milliseconds, as a queue's message TTL is given."""
    return max(1, round(delay_s * 1000))
