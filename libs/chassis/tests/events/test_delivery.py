from __future__ import annotations

from datetime import UTC, datetime

from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.context import RequestContext
from taskmesh_chassis.events.delivery import (
    ATTEMPT_HEADER,
    DeadLetter,
    DeadLetterReason,
    dead_letter_headers,
    describe_dead_letter,
    failed_attempts,
    replay_headers,
    retry_headers,
)
from taskmesh_chassis.events.envelope import encode_event, new_event

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BROKER_HISTORY = {
    "x-death": [{"reason": "expired", "queue": "q.retry.50ms", "count": 1, "time": NOW}],
    "x-first-death-reason": "expired",
    "x-delivery-count": 0,
}


def test_a_first_delivery_has_no_failed_attempts() -> None:
    assert failed_attempts({}) == 0


def test_retry_headers_count_the_failures_and_drop_the_broker_history() -> None:
    headers = retry_headers({"keep": "me", **BROKER_HISTORY, ATTEMPT_HEADER: 1}, failed=2)

    assert headers == {"keep": "me", ATTEMPT_HEADER: 2}
    assert failed_attempts(headers) == 2


def test_a_dead_letter_is_described_from_the_consumers_headers() -> None:
    headers = dead_letter_headers(
        {ATTEMPT_HEADER: 2},
        reason=DeadLetterReason.RETRIES_EXHAUSTED,
        error="RuntimeError: boom",
        attempts=3,
        now=NOW,
    )

    letter = describe_dead_letter(b"", headers, message_id="e-1", message_type="task.deleted")

    assert letter == DeadLetter(
        event_id="e-1",
        event_type="task.deleted",
        reason="retries_exhausted",
        attempts=3,
        error="RuntimeError: boom",
        dead_lettered_at=NOW,
    )


def test_a_long_error_is_truncated() -> None:
    headers = dead_letter_headers(
        {}, reason=DeadLetterReason.MALFORMED, error="x" * 5000, attempts=1, now=NOW
    )

    assert len(headers["x-taskmesh-error"]) == 500


def test_a_dead_letter_of_the_broker_is_described_from_x_death() -> None:
    headers = {
        "x-death": [
            {"reason": "delivery_limit", "queue": "q", "count": 1, "time": NOW},
            {"reason": "expired", "queue": "q.retry.50ms", "count": 1, "time": NOW},
        ],
        "x-delivery-count": 10,
    }

    letter = describe_dead_letter(b"", headers, message_id="e-2", message_type="task.created")

    assert (letter.reason, letter.attempts, letter.dead_lettered_at) == ("delivery_limit", 10, NOW)


def test_a_dead_letter_without_message_properties_is_described_from_its_envelope() -> None:
    event = new_event(
        "task.deleted",
        source="taskmesh/tasks",
        subject="t-1",
        payload=events_pb2.TaskDeleted(task_id="t-1"),
        context=RequestContext(request_id="r"),
    )

    letter = describe_dead_letter(encode_event(event), {}, message_id=None, message_type=None)

    assert (letter.event_id, letter.event_type) == (event.id, "task.deleted")


def test_an_undecodable_dead_letter_without_properties_is_still_listed() -> None:
    letter = describe_dead_letter(b"\xff", {}, message_id=None, message_type=None)

    assert (letter.event_id, letter.event_type, letter.reason) == ("?", "?", "unknown")


def test_a_replay_starts_afresh_and_counts_replays() -> None:
    dead = dead_letter_headers(
        {"keep": 1, ATTEMPT_HEADER: 2, **BROKER_HISTORY},
        reason=DeadLetterReason.RETRIES_EXHAUSTED,
        error="boom",
        attempts=3,
        now=NOW,
    )

    once = replay_headers(dead)
    twice = replay_headers(once)

    assert once == {"keep": 1, "x-taskmesh-replays": 1}
    assert twice["x-taskmesh-replays"] == 2
    assert failed_attempts(once) == 0
