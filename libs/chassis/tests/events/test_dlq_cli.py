from __future__ import annotations

from datetime import UTC, datetime

import pytest
from taskmesh_chassis.events.delivery import DeadLetter
from taskmesh_chassis.events.dlq import format_table, main


def test_the_table_lists_id_type_reason_and_attempts_in_columns() -> None:
    letters = [
        DeadLetter("e-1", "task.created", "malformed", 1, "undecodable envelope", None),
        DeadLetter(
            "e-22",
            "user.deleted",
            "retries_exhausted",
            4,
            "RuntimeError: boom",
            datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        ),
    ]

    lines = format_table(letters).splitlines()

    header = ["EVENT ID", "TYPE", "REASON", "ATTEMPTS", "DEAD-LETTERED AT", "ERROR"]
    assert [column.strip() for column in lines[0].split("  ") if column.strip()] == header
    assert lines[1].split()[:5] == ["e-1", "task.created", "malformed", "1", "-"]
    assert lines[2].split()[:5] == [
        "e-22",
        "user.deleted",
        "retries_exhausted",
        "4",
        "2026-03-01T12:00:00+00:00",
    ]
    assert lines[1].index("task.created") == lines[2].index("user.deleted")


def test_replay_needs_ids_or_all() -> None:
    with pytest.raises(SystemExit) as raised:
        main(["replay", "--service", "analytics"])

    assert raised.value.code == 2


def test_replay_refuses_ids_together_with_all() -> None:
    with pytest.raises(SystemExit) as raised:
        main(["replay", "--service", "analytics", "--all", "e-1"])

    assert raised.value.code == 2
