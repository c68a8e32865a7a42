"""What a delivery carries besides the event: attempt counts and dead-letter reasons.

The consumer writes these AMQP headers when it sends a message to a retry queue or to the
dead-letter queue; the dead-letter tools read them back. The broker adds headers of its own
(`x-death`, `x-delivery-count`, ...) whenever it dead-letters a message itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from taskmesh_chassis.events.envelope import MalformedEvent, decode_event

# Failed attempts before this delivery (absent on a first delivery).
ATTEMPT_HEADER: Final = "x-taskmesh-attempt"
REASON_HEADER: Final = "x-taskmesh-dead-letter-reason"
ERROR_HEADER: Final = "x-taskmesh-error"
ATTEMPTS_HEADER: Final = "x-taskmesh-attempts"
DEAD_LETTERED_AT_HEADER: Final = "x-taskmesh-dead-lettered-at"
REPLAYS_HEADER: Final = "x-taskmesh-replays"

# Headers that describe where a message has been; a copy sent on starts without them.
_HISTORY_HEADERS: Final = frozenset(
    {
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        ATTEMPT_HEADER,
        REASON_HEADER,
        ERROR_HEADER,
        ATTEMPTS_HEADER,
        DEAD_LETTERED_AT_HEADER,
    }
)
_MAX_ERROR_LENGTH: Final = 500


class DeadLetterReason(StrEnum):
    """Why a message was sent to the dead-letter queue."""

    MALFORMED = "malformed"
    UNKNOWN_TYPE = "unknown_type"
    UNPROCESSABLE = "unprocessable"
    RETRIES_EXHAUSTED = "retries_exhausted"


def failed_attempts(headers: Mapping[str, Any]) -> int:
    """How many attempts at this message failed before this delivery."""
    value = headers.get(ATTEMPT_HEADER, 0)
    return value if isinstance(value, int) and value > 0 else 0


def retry_headers(headers: Mapping[str, Any], *, failed: int) -> dict[str, Any]:
    """Headers of the copy sent to a retry queue after `failed` failed attempts."""
    return {**_without_history(headers), ATTEMPT_HEADER: failed}


def dead_letter_headers(
    headers: Mapping[str, Any],
    *,
    reason: DeadLetterReason,
    error: str,
    attempts: int,
    now: datetime,
) -> dict[str, Any]:
    """Headers of the copy sent to the dead-letter queue."""
    return {
        **_without_history(headers),
        REASON_HEADER: reason.value,
        ERROR_HEADER: error[:_MAX_ERROR_LENGTH],
        ATTEMPTS_HEADER: attempts,
        DEAD_LETTERED_AT_HEADER: now,
    }


def replay_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Headers of a dead letter sent back to its service: a fresh start, replays counted."""
    replays = headers.get(REPLAYS_HEADER, 0)
    previous = replays if isinstance(replays, int) else 0
    return {**_without_history(headers), REPLAYS_HEADER: previous + 1}


def _without_history(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in headers.items() if key not in _HISTORY_HEADERS}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What an operator needs to know about a dead-lettered message."""

    event_id: str
    event_type: str
    reason: str
    attempts: int
    error: str
    dead_lettered_at: datetime | None


def describe_dead_letter(
    body: bytes, headers: Mapping[str, Any], *, message_id: str | None, message_type: str | None
) -> DeadLetter:
    """Describe a dead letter from its body and headers, whoever dead-lettered it."""
    event_id, event_type = message_id or "", message_type or ""
    if not (event_id and event_type):
        try:
            event = decode_event(body)
        except MalformedEvent:
            event = None
        if event is not None:
            event_id, event_type = event_id or event.id, event_type or event.type
    reason = headers.get(REASON_HEADER)
    error = headers.get(ERROR_HEADER, "")
    attempts = headers.get(ATTEMPTS_HEADER)
    dead_lettered_at = headers.get(DEAD_LETTERED_AT_HEADER)
    if reason is None:
        # Dead-lettered by the broker itself, e.g. `delivery_limit` after repeated crashes.
        death = _latest_death(headers)
        reason = str(death.get("reason", "unknown"))
        dead_lettered_at = death.get("time")
        delivery_count = headers.get("x-delivery-count")
        attempts = delivery_count if isinstance(delivery_count, int) else None
    return DeadLetter(
        event_id=event_id or "?",
        event_type=event_type or "?",
        reason=str(reason),
        attempts=attempts if isinstance(attempts, int) else failed_attempts(headers) + 1,
        error=str(error),
        dead_lettered_at=dead_lettered_at if isinstance(dead_lettered_at, datetime) else None,
    )


def _latest_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return {}
