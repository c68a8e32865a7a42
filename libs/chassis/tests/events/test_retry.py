from __future__ import annotations

import pytest
from taskmesh_chassis.events.relay import backoff_s
from taskmesh_chassis.events.retry import GiveUp, Retry, RetryPolicy


def test_each_failure_but_the_last_schedules_a_retry_with_its_delay() -> None:
    policy = RetryPolicy(delays_s=(1.0, 5.0, 30.0))

    decisions = [policy.after_failure(failed) for failed in (1, 2, 3, 4)]

    assert decisions == [
        Retry(delay_s=1.0, attempt=2),
        Retry(delay_s=5.0, attempt=3),
        Retry(delay_s=30.0, attempt=4),
        GiveUp(attempts=4),
    ]


def test_max_attempts_counts_the_first_attempt() -> None:
    assert RetryPolicy(delays_s=(1.0, 5.0)).max_attempts == 3


def test_a_policy_without_delays_gives_up_after_one_attempt() -> None:
    assert RetryPolicy(delays_s=()).after_failure(1) == GiveUp(attempts=1)


def test_exponential_delays_grow_by_the_factor_up_to_the_cap() -> None:
    policy = RetryPolicy.exponential(
        max_attempts=6, first_delay_s=1.0, factor=4.0, max_delay_s=100.0
    )

    assert policy.delays_s == (1.0, 4.0, 16.0, 64.0, 100.0)


def test_retry_queues_are_one_per_distinct_delay_in_milliseconds() -> None:
    policy = RetryPolicy(delays_s=(0.05, 1.0, 1.0, 0.0504))

    assert policy.distinct_delays_ms == (50, 1000)


def test_a_delay_below_one_millisecond_is_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(delays_s=(0.0,))


def test_failures_count_from_one() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().after_failure(0)


def test_relay_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(failures) for failures in (1, 2, 3, 4, 5, 6, 10)] == [
        0.2,
        0.4,
        0.8,
        1.6,
        3.2,
        5.0,
        5.0,
    ]
