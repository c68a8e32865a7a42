"""The notification rules, the list's cursor and the payload checks, without any server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_chassis.errors import InvalidArgument
from taskmesh_chassis.events import UnprocessableEvent
from taskmesh_notifications.consumer import recipient_wait_s, task_copy_from
from taskmesh_notifications.domain import (
    NotificationType,
    Recipient,
    TaskCopy,
    assignment_notice,
    completion_notice,
    due_soon_notice,
    format_local,
    reminder_key,
    rfc3339,
)
from taskmesh_notifications.emails import (
    due_soon_email,
    password_reset_email,
    task_assigned_email,
    welcome_email,
)
from taskmesh_notifications.listing import (
    DEFAULT_LIMIT,
    Position,
    check_limit,
    check_query,
    decode_cursor,
    encode_cursor,
)
from taskmesh_notifications.mail import EmailTemplate

OWNER, ASSIGNEE, ADMIN = (str(ObjectId()) for _ in range(3))
TASK_ID = str(ObjectId())
DUE = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)


def task(**changes: object) -> TaskCopy:
    fields: dict[str, object] = {
        "id": TASK_ID,
        "owner_id": OWNER,
        "assignee_id": ASSIGNEE,
        "title": "Write the report",
        "due_at": DUE,
        "done": False,
        "version": 1,
    }
    fields.update(changes)
    return TaskCopy(**fields)  # type: ignore[arg-type]


def field_locs(error: InvalidArgument) -> list[tuple[str | int, ...]]:
    return [tuple(field.loc) for field in error.errors]


# --- who is told -------------------------------------------------------------------------


def test_assignment_notifies_the_new_assignee_naming_the_actor() -> None:
    notice = assignment_notice(task(), OWNER, "Grace")

    assert notice is not None
    assert (notice.user_id, notice.type, notice.task_id) == (
        ASSIGNEE,
        NotificationType.TASK_ASSIGNED,
        TASK_ID,
    )
    assert notice.body == "Grace assigned you “Write the report”."


def test_assignment_by_an_actor_without_a_copy_does_not_name_them() -> None:
    notice = assignment_notice(task(), OWNER, "")

    assert notice is not None
    assert notice.body == "You were assigned “Write the report”."


def test_assigning_a_task_to_oneself_notifies_nobody() -> None:
    assert assignment_notice(task(), ASSIGNEE, "Ada") is None


def test_an_admin_assigning_the_owner_their_own_task_notifies_the_owner() -> None:
    notice = assignment_notice(task(assignee_id=OWNER), ADMIN, "Root")

    assert notice is not None
    assert notice.user_id == OWNER


def test_completion_by_the_assignee_notifies_the_owner() -> None:
    notice = completion_notice(task(done=True), ASSIGNEE, "Ada")

    assert notice is not None
    assert (notice.user_id, notice.type) == (OWNER, NotificationType.TASK_COMPLETED)
    assert notice.body == "Ada completed “Write the report”."


@pytest.mark.parametrize(
    ("assignee_id", "actor_id"),
    [(ASSIGNEE, OWNER), (ASSIGNEE, ADMIN), (None, OWNER), (OWNER, OWNER)],
    ids=["by-the-owner", "by-an-admin", "unassigned", "owner-is-assignee"],
)
def test_completion_by_anyone_but_a_distinct_assignee_notifies_nobody(
    assignee_id: str | None, actor_id: str
) -> None:
    assert completion_notice(task(assignee_id=assignee_id, done=True), actor_id, "") is None


def test_a_reminder_goes_to_the_owner_and_a_distinct_assignee() -> None:
    assert task().people() == [OWNER, ASSIGNEE]
    assert task(assignee_id=OWNER).people() == [OWNER]
    assert task(assignee_id=None).people() == [OWNER]


def test_only_a_task_with_a_due_date_and_not_done_needs_a_reminder() -> None:
    assert task().needs_reminder
    assert not task(done=True).needs_reminder
    assert not task(due_at=None).needs_reminder


def test_due_soon_notice_names_the_task_and_the_local_due_time() -> None:
    notice = due_soon_notice(task(), ASSIGNEE, "2026-11-29 14:00 Europe/Paris")

    assert (notice.type, notice.title) == (NotificationType.TASK_DUE_SOON, "Task due soon")
    assert notice.body == "“Write the report” is due 2026-11-29 14:00 Europe/Paris."


# --- time --------------------------------------------------------------------------------


def test_due_time_is_shown_in_the_recipients_time_zone() -> None:
    assert format_local(DUE, "Europe/Paris") == "2026-11-29 14:00 Europe/Paris"
    assert format_local(DUE, "America/New_York") == "2026-11-29 08:00 America/New_York"
    assert format_local(DUE, "UTC") == "2026-11-29 13:00 UTC"


def test_an_unknown_time_zone_shows_the_time_in_utc_saying_so() -> None:
    assert format_local(DUE, "Mars/Olympus_Mons") == "2026-11-29 13:00 UTC"
    assert format_local(DUE, "../etc/passwd") == "2026-11-29 13:00 UTC"


def test_reminder_key_is_one_per_task_and_due_date() -> None:
    assert reminder_key(TASK_ID, DUE) == f"{TASK_ID}:2026-11-29T13:00:00.000Z"
    assert reminder_key(TASK_ID, DUE + timedelta(hours=1)) != reminder_key(TASK_ID, DUE)


def test_rfc3339_is_utc_with_milliseconds() -> None:
    moment = datetime(2026, 11, 28, 9, 42, 14, 123456, tzinfo=UTC)
    assert rfc3339(moment) == "2026-11-28T09:42:14.123Z"


# --- emails ------------------------------------------------------------------------------


def test_event_emails_are_keyed_by_template_event_and_user() -> None:
    ada = Recipient(user_id=ASSIGNEE, email="ada@example.com", name="Ada")

    assert welcome_email("ev-1", ada).key == f"welcome:ev-1:{ASSIGNEE}"
    assert task_assigned_email("ev-2", ada, task(), "Grace").key == f"task_assigned:ev-2:{ASSIGNEE}"
    reset = password_reset_email("ev-3", ASSIGNEE, "ada@example.com", "tok", DUE)
    assert reset.key == f"password_reset:ev-3:{ASSIGNEE}"
    assert reset.context == {"token": "tok", "expires_at": "2026-11-29T13:00:00.000Z"}


def test_due_soon_email_is_keyed_by_task_due_date_and_user() -> None:
    ada = Recipient(user_id=ASSIGNEE, email="ada@example.com", name="Ada")

    message = due_soon_email(ada, task(), "2026-11-29 14:00 Europe/Paris")

    assert message.key == f"task_due_soon:{TASK_ID}:2026-11-29T13:00:00.000Z:{ASSIGNEE}"
    assert message.template is EmailTemplate.TASK_DUE_SOON
    assert message.context["due_at"] == "2026-11-29 14:00 Europe/Paris"


# --- waiting for a recipient's copy --------------------------------------------------------


def test_recipient_wait_ends_before_the_last_retry() -> None:
    assert recipient_wait_s((1, 5, 30, 120)) == 36
    assert recipient_wait_s((1,)) == 0
    assert recipient_wait_s(()) == 0


# --- the task payload --------------------------------------------------------------------


def task_message(**changes: object) -> tasks_pb2.Task:
    due = Timestamp()
    due.FromDatetime(DUE)
    message = tasks_pb2.Task(
        id=TASK_ID,
        owner_id=OWNER,
        title="Write the report",
        status=tasks_pb2.STATUS_TODO,
        due_at=due,
        version=3,
    )
    for name, value in changes.items():
        setattr(message, name, value)
    return message


def test_task_copy_reads_the_events_task() -> None:
    copy = task_copy_from(task_message(assignee_id=ASSIGNEE))

    assert copy == task(version=3)


def test_task_copy_of_a_done_task_without_due_date_or_assignee() -> None:
    message = task_message(status=tasks_pb2.STATUS_DONE)
    message.ClearField("due_at")

    copy = task_copy_from(message)

    assert (copy.done, copy.due_at, copy.assignee_id) == (True, None, None)


@pytest.mark.parametrize(
    "changes",
    [{"id": "nope"}, {"owner_id": "{'$ne': 1}"}, {"assignee_id": "x" * 24}, {"version": 0}],
    ids=["task-id", "owner-id", "assignee-id", "version"],
)
def test_task_copy_refuses_a_task_no_retry_can_fix(changes: dict[str, object]) -> None:
    with pytest.raises(UnprocessableEvent):
        task_copy_from(task_message(**changes))


# --- the list's paging -------------------------------------------------------------------


def test_cursor_names_the_position_it_was_made_of() -> None:
    position = Position(
        created_at=datetime(2026, 11, 28, 9, 42, 14, 123000, tzinfo=UTC), id=TASK_ID
    )

    assert decode_cursor(encode_cursor(position)) == position


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !",
        "e30",  # {}
        encode_cursor(Position(datetime(2026, 1, 1, tzinfo=UTC), TASK_ID))[:-4],
        "eyJ2IjoxLCJjIjoiMjAyNi0wMS0wMVQwMDowMDowMC4wMDBaIiwiaSI6eyIkbmUiOm51bGx9fQ",
        "eyJ2IjoyLCJjIjoiMjAyNi0wMS0wMVQwMDowMDowMC4wMDBaIiwiaSI6IjY1YTFiMmMzZDRlNWY2MDcxODI5M2E0YiJ9",
        "x" * 600,
    ],
    ids=["garbage", "empty-object", "truncated", "operator-as-id", "other-version", "too-long"],
)
def test_a_cursor_that_is_not_ours_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        decode_cursor(cursor)
    assert field_locs(raised.value) == [("query", "cursor")]


def test_limit_zero_means_the_default_and_outside_1_to_100_is_invalid() -> None:
    assert check_limit(0) == DEFAULT_LIMIT
    assert check_limit(1) == 1
    assert check_limit(100) == 100
    for limit in (-1, 101):
        with pytest.raises(InvalidArgument) as raised:
            check_limit(limit)
        assert field_locs(raised.value) == [("query", "limit")]


def test_query_starts_from_the_callers_id() -> None:
    query = check_query(OWNER, unread_only=True, limit=5, cursor="")

    assert (query.user_id, query.unread_only, query.limit, query.after) == (OWNER, True, 5, None)
