"""The read copies' ordering and tombstones, by calling the handlers in transactions of SecantusDB.

Events arrive out of order after retries and replays; these tests hand them to the handlers
in the order that matters, as the consumer would (one transaction per event).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from taskmesh_chassis.events import Event, UnprocessableEvent
from taskmesh_chassis.testing import CapturedLogs, capture_logs

from .conftest import (
    Database,
    handle,
    new_id,
    profile_updated,
    task_assigned,
    task_completed,
    task_created,
    task_deleted,
    task_message,
    task_updated,
    user_deleted,
    user_registered,
)

pytestmark = pytest.mark.integration


def at(event: Event, moment: datetime) -> Event:
    """The event as if it happened at `moment`."""
    return dataclasses.replace(event, time=moment)


async def copy_of(database: Database, user_id: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await database.recipients.find_one({"_id": user_id})
    return found


NOW = datetime.now(UTC).replace(microsecond=0)


# --- recipients -----------------------------------------------------------------------------


async def test_an_older_profile_arriving_late_changes_nothing(laid_out_db: Database) -> None:
    user_id = new_id()
    newer = at(profile_updated(user_id, "a@example.com", timezone="Asia/Tokyo"), NOW)
    older = at(
        profile_updated(user_id, "a@example.com", timezone="Europe/Paris"),
        NOW - timedelta(seconds=5),
    )

    await handle(laid_out_db, newer, older)

    copy = await copy_of(laid_out_db, user_id)
    assert copy is not None
    assert copy["timezone"] == "Asia/Tokyo"


async def test_a_profile_update_before_the_registration_is_kept(laid_out_db: Database) -> None:
    user_id = new_id()
    update = profile_updated(user_id, "a@example.com", name="Ada L.", email_notifications=False)

    await handle(laid_out_db, update, user_registered(user_id, "a@example.com", "Ada"))

    copy = await copy_of(laid_out_db, user_id)
    assert copy is not None
    assert (copy["name"], copy["email_notifications"]) == ("Ada L.", False)
    assert await laid_out_db.emails.count_documents({}) == 0


async def test_no_event_brings_a_deleted_users_copy_back(laid_out_db: Database) -> None:
    user_id = new_id()

    await handle(
        laid_out_db,
        user_registered(user_id, "a@example.com"),
        user_deleted(user_id),
        user_registered(user_id, "a@example.com"),
        profile_updated(user_id, "a@example.com"),
    )

    assert await copy_of(laid_out_db, user_id) is None
    assert await laid_out_db.deleted_users.count_documents({"_id": user_id}) == 1
    # The first registration's welcome email went with the account; the replay queued none.
    assert await laid_out_db.emails.count_documents({}) == 0


async def test_a_registration_whose_address_cannot_be_mailed_keeps_the_copy(
    laid_out_db: Database,
) -> None:
    logs: CapturedLogs = capture_logs("notifications")
    user_id = new_id()

    await handle(laid_out_db, user_registered(user_id, "no address"))

    assert await copy_of(laid_out_db, user_id) is not None
    assert await laid_out_db.emails.count_documents({}) == 0
    (invalid,) = logs.events("notifications.email_invalid")
    assert invalid["user_id"] == user_id


async def test_user_deleted_without_a_valid_user_id_is_unprocessable(
    laid_out_db: Database,
) -> None:
    event = user_deleted("{'$ne': null}")

    with pytest.raises(UnprocessableEvent):
        await handle(laid_out_db, event)


# --- task copies ------------------------------------------------------------------------------


async def task_copy(database: Database, task_id: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await database.due_tasks.find_one({"_id": task_id})
    return found


async def test_an_older_task_version_arriving_late_changes_nothing(laid_out_db: Database) -> None:
    owner = new_id()
    first_due, second_due = NOW + timedelta(days=2), NOW + timedelta(days=3)
    v1 = task_message(owner, due_at=first_due)
    v2 = task_message(owner, task_id=v1.id, due_at=second_due, title="Renamed", version=2)

    await handle(laid_out_db, task_updated(v2, owner, ["due_at"]), task_created(v1, owner))

    copy = await task_copy(laid_out_db, v1.id)
    assert copy is not None
    assert (copy["version"], copy["title"], copy["due_at"]) == (2, "Renamed", second_due)
    assert copy["pending_due_at"] == second_due


async def test_a_done_task_has_no_pending_reminder(laid_out_db: Database) -> None:
    owner = new_id()
    task = task_message(owner, due_at=NOW + timedelta(hours=3))
    done = task_message(
        owner, task_id=task.id, due_at=NOW + timedelta(hours=3), done=True, version=2
    )

    await handle(laid_out_db, task_created(task, owner), task_completed(done, owner))

    copy = await task_copy(laid_out_db, task.id)
    assert copy is not None
    assert copy["done"] is True
    assert "pending_due_at" not in copy


async def test_a_deleted_task_stays_deleted_whatever_arrives_later(laid_out_db: Database) -> None:
    owner = new_id()
    task = task_message(owner, due_at=NOW + timedelta(hours=3))
    later = task_message(owner, task_id=task.id, due_at=NOW + timedelta(hours=5), version=7)

    await handle(
        laid_out_db,
        task_created(task, owner),
        task_deleted(task, owner),
        task_updated(later, owner, ["due_at"]),
    )

    copy = await task_copy(laid_out_db, task.id)
    assert copy is not None
    assert "deleted_at" in copy
    assert "pending_due_at" not in copy
    assert "due_at" not in copy


async def test_a_deletion_before_the_creation_keeps_the_task_out(laid_out_db: Database) -> None:
    owner = new_id()
    task = task_message(owner, due_at=NOW + timedelta(hours=3))

    await handle(laid_out_db, task_deleted(task, owner), task_created(task, owner))

    copy = await task_copy(laid_out_db, task.id)
    assert copy is not None
    assert set(copy) == {"_id", "deleted_at"}


async def test_an_assignment_superseded_by_a_newer_one_notifies_nobody(
    laid_out_db: Database,
) -> None:
    owner, first, second = new_id(), new_id(), new_id()
    to_first = task_message(owner, assignee_id=first, version=2)
    to_second = task_message(owner, task_id=to_first.id, assignee_id=second, version=3)

    await handle(laid_out_db, task_assigned(to_second, owner), task_assigned(to_first, owner))

    recipients = [doc["user_id"] async for doc in laid_out_db.notifications.find()]
    assert recipients == [second]


async def test_no_notification_for_an_assignment_of_a_deleted_task(laid_out_db: Database) -> None:
    owner, assignee = new_id(), new_id()
    task = task_message(owner, assignee_id=assignee)

    await handle(laid_out_db, task_deleted(task, owner), task_assigned(task, owner))

    assert await laid_out_db.notifications.count_documents({}) == 0


async def test_no_notification_for_a_deleted_assignee(laid_out_db: Database) -> None:
    owner, assignee = new_id(), new_id()

    await handle(
        laid_out_db,
        user_deleted(assignee),
        task_assigned(task_message(owner, assignee_id=assignee), owner),
    )

    assert await laid_out_db.notifications.count_documents({}) == 0
