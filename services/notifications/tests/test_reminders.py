"""Due-soon reminders against real SecantusDB: once per task and due date, also when racing.

Most tests drive the scheduler's passes by hand with a fixed clock, the task copies fed by
the handlers; the last ones run the whole service (twice over one database) with
`REMINDER_SCAN_INTERVAL_S` 1 and RabbitMQ.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from taskmesh_chassis.events import Outbox
from taskmesh_chassis.mongo import create_mongo_client
from taskmesh_chassis.testing import running_service
from taskmesh_notifications.events import EVENT_SOURCE
from taskmesh_notifications.reminders import ReminderOutcome, ReminderScheduler
from taskmesh_notifications.repository import DueTasks, RecipientCopies

from .conftest import (
    SERVICE,
    Database,
    SettingsFactory,
    eventually,
    handle,
    new_id,
    notifier_over,
    open_database,
    profile_updated,
    publish,
    task_completed,
    task_created,
    task_deleted,
    task_message,
    task_updated,
    user_deleted,
    user_registered,
)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LEAD_S = 24 * 3600.0


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


def scheduler_over(database: Database, clock: Clock, *, batch: int = 100) -> ReminderScheduler:
    return ReminderScheduler(
        DueTasks(database),
        RecipientCopies(database),
        notifier_over(database),
        Outbox(database, source=EVENT_SOURCE),
        interval_s=60,
        lead_s=LEAD_S,
        batch=batch,
        clock=clock,
    )


@pytest.fixture
def scheduler(laid_out_db: Database, clock: Clock) -> ReminderScheduler:
    return scheduler_over(laid_out_db, clock)


async def person(database: Database, name: str, **profile: Any) -> tuple[str, str]:
    """A user with a recipient copy (and profile settings, when given): id and address."""
    user_id = new_id()
    email = f"{name.lower()}-{user_id[-6:]}@example.com"
    events = [user_registered(user_id, email, name)]
    if profile:
        events.append(profile_updated(user_id, email, name=name, **profile))
    await handle(database, *events)
    return user_id, email


async def due_soon(database: Database) -> list[dict[str, Any]]:
    cursor = database.notifications.find({"type": "task.due_soon"}).sort("user_id", 1)
    found: list[dict[str, Any]] = await cursor.to_list()
    return found


async def due_soon_emails(database: Database) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await database.emails.find(
        {"template": "task_due_soon"}
    ).to_list()
    return found


# --- one scheduler ------------------------------------------------------------------------------


async def test_a_task_due_within_a_day_reminds_owner_and_assignee_once(
    laid_out_db: Database, scheduler: ReminderScheduler
) -> None:
    owner, owner_email = await person(laid_out_db, "Grace", timezone="Europe/Paris")
    assignee, assignee_email = await person(laid_out_db, "Ada", timezone="America/New_York")
    due = NOW + timedelta(hours=2)
    task = task_message(owner, assignee_id=assignee, due_at=due)
    await handle(laid_out_db, task_created(task, owner))

    await scheduler.run_pass()
    await scheduler.run_pass()

    notified = {doc["user_id"]: doc for doc in await due_soon(laid_out_db)}
    assert set(notified) == {owner, assignee}
    assert notified[owner]["body"] == "“Write the report” is due 2026-11-28 15:00 Europe/Paris."
    emails = {mail["to"]: mail for mail in await due_soon_emails(laid_out_db)}
    assert set(emails) == {owner_email, assignee_email}
    assert emails[assignee_email]["_id"] == (
        f"task_due_soon:{task.id}:2026-11-28T14:00:00.000Z:{assignee}"
    )
    assert emails[assignee_email]["context"] == {
        "name": "Ada",
        "task_id": task.id,
        "task_title": "Write the report",
        "due_at": "2026-11-28 09:00 America/New_York",
    }
    published = await laid_out_db.outbox.find({"type": "notification.created"}).to_list()
    assert sorted(record["subject"] for record in published) == sorted([owner, assignee])
    assert await laid_out_db.reminders.count_documents({}) == 1


async def test_only_tasks_due_in_the_next_day_not_done_nor_deleted_are_reminded(
    laid_out_db: Database, scheduler: ReminderScheduler, clock: Clock
) -> None:
    owner, _ = await person(laid_out_db, "Grace")
    later = task_message(owner, due_at=NOW + timedelta(hours=25))
    past = task_message(owner, due_at=NOW - timedelta(minutes=1))
    undated = task_message(owner)
    done = task_message(owner, due_at=NOW + timedelta(hours=2), done=True)
    deleted = task_message(owner, due_at=NOW + timedelta(hours=2))
    await handle(
        laid_out_db,
        *(task_created(task, owner) for task in (later, past, undated, done, deleted)),
        task_deleted(deleted, owner),
    )

    await scheduler.run_pass()
    assert await due_soon(laid_out_db) == []

    clock.now = NOW + timedelta(hours=2)
    await scheduler.run_pass()
    assert [doc["task_id"] for doc in await due_soon(laid_out_db)] == [later.id]


async def test_moving_the_due_date_arms_the_reminder_again(
    laid_out_db: Database, scheduler: ReminderScheduler
) -> None:
    owner, _ = await person(laid_out_db, "Grace")
    first_due, second_due = NOW + timedelta(hours=2), NOW + timedelta(hours=5)
    v1 = task_message(owner, due_at=first_due)
    await handle(laid_out_db, task_created(v1, owner))
    await scheduler.run_pass()

    v2 = task_message(owner, task_id=v1.id, due_at=second_due, version=2)
    await handle(laid_out_db, task_updated(v2, owner, ["due_at"]))
    await scheduler.run_pass()
    v3 = task_message(owner, task_id=v1.id, due_at=first_due, version=3)
    await handle(laid_out_db, task_updated(v3, owner, ["due_at"]))
    await scheduler.run_pass()

    bodies = [doc["body"] for doc in await due_soon(laid_out_db)]
    assert sorted(bodies) == [
        "“Write the report” is due 2026-11-28 14:00 UTC.",
        "“Write the report” is due 2026-11-28 17:00 UTC.",
    ]
    assert await laid_out_db.reminders.count_documents({}) == 2


async def test_a_reopened_task_is_not_reminded_again_of_the_same_due_date(
    laid_out_db: Database, scheduler: ReminderScheduler
) -> None:
    owner, _ = await person(laid_out_db, "Grace")
    due = NOW + timedelta(hours=2)
    task = task_message(owner, due_at=due)
    await handle(laid_out_db, task_created(task, owner))
    await scheduler.run_pass()

    done = task_message(owner, task_id=task.id, due_at=due, done=True, version=2)
    reopened = task_message(owner, task_id=task.id, due_at=due, version=3)
    await handle(
        laid_out_db, task_completed(done, owner), task_updated(reopened, owner, ["status"])
    )
    await scheduler.run_pass()

    assert len(await due_soon(laid_out_db)) == 1
    copy = await laid_out_db.due_tasks.find_one({"_id": task.id})
    assert "pending_due_at" not in copy


async def test_email_only_to_people_with_a_copy_who_want_email(
    laid_out_db: Database, scheduler: ReminderScheduler
) -> None:
    owner = new_id()
    assignee, _ = await person(laid_out_db, "Ada", email_notifications=False)
    task = task_message(owner, assignee_id=assignee, due_at=NOW + timedelta(hours=2))
    await handle(laid_out_db, task_created(task, owner))

    await scheduler.run_pass()

    notified = [doc["user_id"] for doc in await due_soon(laid_out_db)]
    assert sorted(notified) == sorted([owner, assignee])
    assert await due_soon_emails(laid_out_db) == []


async def test_a_deleted_user_is_not_reminded(
    laid_out_db: Database, scheduler: ReminderScheduler
) -> None:
    owner, _ = await person(laid_out_db, "Grace")
    assignee, _ = await person(laid_out_db, "Ada")
    task = task_message(owner, assignee_id=assignee, due_at=NOW + timedelta(hours=2))
    await handle(laid_out_db, task_created(task, owner), user_deleted(assignee))

    await scheduler.run_pass()

    assert [doc["user_id"] for doc in await due_soon(laid_out_db)] == [owner]
    assert len(await due_soon_emails(laid_out_db)) == 1


async def test_a_reminder_taken_since_the_scan_is_not_sent_again(
    laid_out_db: Database, scheduler: ReminderScheduler
) -> None:
    owner, _ = await person(laid_out_db, "Grace")
    task = task_message(owner, due_at=NOW + timedelta(hours=2))
    await handle(laid_out_db, task_created(task, owner))
    (scanned,) = await DueTasks(laid_out_db).pending_between(NOW, NOW + timedelta(days=1), 10)

    assert await scheduler.remind(scanned) is ReminderOutcome.SENT
    assert await scheduler.remind(scanned) is ReminderOutcome.TAKEN
    assert len(await due_soon(laid_out_db)) == 1


async def test_a_pending_mark_for_a_date_already_reminded_is_dropped(
    laid_out_db: Database, scheduler: ReminderScheduler
) -> None:
    owner, _ = await person(laid_out_db, "Grace")
    due = NOW + timedelta(hours=2)
    task = task_message(owner, due_at=due)
    await handle(laid_out_db, task_created(task, owner))
    await scheduler.run_pass()
    await laid_out_db.due_tasks.update_one({"_id": task.id}, {"$set": {"pending_due_at": due}})

    (scanned,) = await DueTasks(laid_out_db).pending_between(NOW, NOW + timedelta(days=1), 10)
    assert await scheduler.remind(scanned) is ReminderOutcome.DUPLICATE

    assert len(await due_soon(laid_out_db)) == 1
    copy = await laid_out_db.due_tasks.find_one({"_id": task.id})
    assert "pending_due_at" not in copy


async def test_a_full_batch_asks_for_the_next_pass_at_once(
    laid_out_db: Database, clock: Clock
) -> None:
    scheduler = scheduler_over(laid_out_db, clock, batch=2)
    owner = new_id()
    tasks = [task_message(owner, due_at=NOW + timedelta(hours=hours)) for hours in (1, 2, 3)]
    await handle(laid_out_db, *(task_created(task, owner) for task in tasks))

    assert await scheduler.run_pass() is True
    assert await scheduler.run_pass() is False
    assert [doc["task_id"] for doc in await due_soon(laid_out_db)] == [t.id for t in tasks]


async def test_the_scan_is_served_by_the_pending_due_at_index(laid_out_db: Database) -> None:
    owner = new_id()
    tasks = [task_message(owner, due_at=NOW + timedelta(hours=hours)) for hours in range(60)]
    await handle(laid_out_db, *(task_created(task, owner) for task in tasks[:40]))
    await handle(laid_out_db, *(task_created(task_message(owner), owner) for _ in range(20)))

    plan = await DueTasks(laid_out_db).explain_pending(NOW, NOW + timedelta(days=1), 100)

    winning = plan["queryPlanner"]["winningPlan"]
    assert "COLLSCAN" not in str(winning)
    assert "'indexName': 'pending_due_at'" in str(winning)
    assert plan["executionStats"]["totalDocsExamined"] == 24


# --- several schedulers -------------------------------------------------------------------------


@pytest.fixture
async def second_database(secantus_url: str, laid_out_db: Database) -> AsyncIterator[Database]:
    """The same database through a client of its own, as another instance would see it."""
    client = create_mongo_client(secantus_url, appname="taskmesh-notifications-second")
    yield client[laid_out_db.name]
    await client.close()


async def test_two_schedulers_racing_remind_each_task_exactly_once(
    laid_out_db: Database, second_database: Database, clock: Clock
) -> None:
    owner, _ = await person(laid_out_db, "Grace")
    assignee, _ = await person(laid_out_db, "Ada")
    tasks = [
        task_message(owner, assignee_id=assignee, due_at=NOW + timedelta(minutes=minutes))
        for minutes in range(1, 21)
    ]
    await handle(laid_out_db, *(task_created(task, owner) for task in tasks))
    first = scheduler_over(laid_out_db, clock)
    second = scheduler_over(second_database, clock)

    await asyncio.gather(first.run_pass(), second.run_pass(), first.run_pass())

    notified = await due_soon(laid_out_db)
    assert len(notified) == 2 * len(tasks)
    per_task = {task.id: 0 for task in tasks}
    for doc in notified:
        per_task[doc["task_id"]] += 1
    assert set(per_task.values()) == {2}
    assert len(await due_soon_emails(laid_out_db)) == 2 * len(tasks)
    assert await laid_out_db.reminders.count_documents({}) == len(tasks)


# --- the running service -----------------------------------------------------------------------


async def test_two_running_instances_remind_once_and_a_restart_sends_nothing_more(
    settings_factory: SettingsFactory,
) -> None:
    first = settings_factory()
    second = settings_factory(
        mongodb_database_prefix=first.mongodb_database_prefix,
        events_exchange=first.events_exchange,
    )
    owner, assignee = new_id(), new_id()
    task = task_message(owner, assignee_id=assignee, due_at=datetime.now(UTC) + timedelta(hours=1))
    events = [
        user_registered(owner, "grace@example.com", "Grace"),
        user_registered(assignee, "ada@example.com", "Ada"),
        task_created(task, owner),
    ]
    async with open_database(first) as database:
        async with AsyncExitStack() as instances:
            await instances.enter_async_context(running_service(SERVICE, first))
            await instances.enter_async_context(running_service(SERVICE, second))
            await publish(first, *events)

            async def both_reminded() -> bool:
                return len(await due_soon(database)) >= 2

            await eventually(both_reminded, what="the reminders")
            await asyncio.sleep(2.5)  # more than two scans of each instance

            assert len(await due_soon(database)) == 2
            assert len(await due_soon_emails(database)) == 2

        async with running_service(SERVICE, first):
            await asyncio.sleep(2.5)

        assert len(await due_soon(database)) == 2
        assert await database.reminders.count_documents({}) == 1
