"""The notification rules as the running service applies them to events from RabbitMQ.

Each test publishes events to an exchange of its own, as the other services' relays would,
and reads what the service stored: notifications, email delivery records, read copies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import pytest
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.events import Event, decode_event
from taskmesh_chassis.events.topology import declare_exchange
from taskmesh_chassis.testing import CapturedLogs, capture_logs, running_service
from taskmesh_notifications.settings import NotificationsSettings

from .conftest import (
    AMQP_URL,
    SERVICE,
    Database,
    SettingsFactory,
    eventually,
    new_id,
    open_database,
    password_reset_requested,
    profile_updated,
    publish,
    task_assigned,
    task_completed,
    task_created,
    task_message,
    user_deleted,
    user_registered,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def logs() -> CapturedLogs:
    return capture_logs("notifications")


@pytest.fixture
async def service(
    settings: NotificationsSettings, logs: CapturedLogs
) -> AsyncIterator[NotificationsSettings]:
    """The service running, its consumer bound to the test's exchange."""
    async with running_service(SERVICE, settings):
        await consumer_started(logs)
        yield settings


async def _true(value: bool) -> bool:
    return value


async def consumer_started(logs: CapturedLogs) -> None:
    """Wait until the service's consumer is bound to the exchange."""
    await eventually(
        lambda: _true(bool(logs.events("events.consumer_started"))), what="the consumer to start"
    )


async def processed(database: Database, *events: Event) -> None:
    """Wait until the service has applied every one of `events`."""
    ids = [event.id for event in events]

    async def all_processed() -> bool:
        return await database.processed_events.count_documents({"_id": {"$in": ids}}) == len(ids)

    await eventually(all_processed, what=f"events {ids} to be processed")


async def notifications_of(database: Database, user_id: str) -> list[dict[str, Any]]:
    cursor = database.notifications.find({"user_id": user_id}).sort("created_at", 1)
    found: list[dict[str, Any]] = await cursor.to_list()
    return found


async def emails_to(database: Database, address: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await database.emails.find({"to": address}).to_list()
    return found


async def register(
    settings: NotificationsSettings, database: Database, name: str, **profile: Any
) -> tuple[str, str]:
    """A registered user (with a profile update when `profile` is given): id and address."""
    user_id = new_id()
    email = f"{name.lower()}-{user_id[-6:]}@example.com"
    events = [user_registered(user_id, email, name)]
    if profile:
        events.append(profile_updated(user_id, email, name=name, **profile))
    await publish(settings, *events)
    await processed(database, *events)
    return user_id, email


# --- users -------------------------------------------------------------------------------


async def test_registration_copies_the_recipient_and_queues_the_welcome_email(
    service: NotificationsSettings, database: Database
) -> None:
    user_id, email = new_id(), "Ada@Example.com"
    registered = user_registered(user_id, email, "Ada")

    await publish(service, registered)
    await processed(database, registered)

    copy = await database.recipients.find_one({"_id": user_id})
    assert copy is not None
    assert (copy["email"], copy["name"], copy["timezone"], copy["email_notifications"]) == (
        "ada@example.com",
        "Ada",
        "UTC",
        True,
    )
    (welcome,) = await emails_to(database, "ada@example.com")
    assert (welcome["_id"], welcome["template"], welcome["context"]) == (
        f"welcome:{registered.id}:{user_id}",
        "welcome",
        {"name": "Ada"},
    )


async def test_profile_update_changes_the_copy(
    service: NotificationsSettings, database: Database
) -> None:
    user_id, email = await register(
        service, database, "Ada", timezone="Europe/Paris", email_notifications=False
    )

    copy = await database.recipients.find_one({"_id": user_id})
    assert copy is not None
    assert (copy["email"], copy["timezone"], copy["email_notifications"]) == (
        email,
        "Europe/Paris",
        False,
    )


async def test_reset_email_goes_out_even_to_a_user_who_turned_email_off(
    service: NotificationsSettings, database: Database
) -> None:
    user_id, email = await register(service, database, "Ada", email_notifications=False)
    reset = password_reset_requested(user_id, email, "rst_secret-token")

    await publish(service, reset)
    await processed(database, reset)

    (record,) = [mail for mail in await emails_to(database, email) if mail["template"] != "welcome"]
    assert (record["_id"], record["template"], record["context"]) == (
        f"password_reset:{reset.id}:{user_id}",
        "password_reset",
        {"token": "rst_secret-token", "expires_at": "2026-11-28T14:00:00.000Z"},
    )


async def test_reset_email_goes_to_the_events_address_without_a_copy(
    service: NotificationsSettings, database: Database
) -> None:
    user_id = new_id()
    reset = password_reset_requested(user_id, "nocopy@example.com", "rst_other")

    await publish(service, reset)
    await processed(database, reset)

    (record,) = await emails_to(database, "nocopy@example.com")
    assert record["context"]["token"] == "rst_other"


async def test_user_deleted_removes_notifications_and_copy_and_keeps_them_deleted(
    service: NotificationsSettings, database: Database
) -> None:
    owner, _ = await register(service, database, "Grace")
    gone, gone_email = await register(service, database, "Ada")
    task = task_message(owner, assignee_id=gone)
    assigned = task_assigned(task, owner)
    await publish(service, assigned)
    await processed(database, assigned)
    assert len(await notifications_of(database, gone)) == 1
    assert len(await emails_to(database, gone_email)) == 2  # welcome, assignment

    deleted = user_deleted(gone)
    await publish(service, deleted)
    await processed(database, deleted)
    replayed = user_registered(gone, gone_email, "Ada")
    again = task_assigned(task_message(owner, assignee_id=gone), owner)
    await publish(service, replayed, again)
    await processed(database, replayed, again)

    assert await notifications_of(database, gone) == []
    assert await emails_to(database, gone_email) == []
    assert await database.recipients.find_one({"_id": gone}) is None
    assert await database.deleted_users.find_one({"_id": gone}) is not None
    assert await database.recipients.find_one({"_id": owner}) is not None


# --- task.assigned -------------------------------------------------------------------------


async def test_assignment_notifies_the_assignee_in_app_and_by_email(
    service: NotificationsSettings, database: Database
) -> None:
    owner, _ = await register(service, database, "Grace")
    assignee, assignee_email = await register(service, database, "Ada")
    task = task_message(owner, assignee_id=assignee, title="Ship <it>")
    created, assigned = task_created(task, owner), task_assigned(task, owner)

    await publish(service, created, assigned)
    await processed(database, created, assigned)

    (notification,) = await notifications_of(database, assignee)
    assert (notification["type"], notification["task_id"], notification["read"]) == (
        "task.assigned",
        task.id,
        False,
    )
    assert notification["body"] == "Grace assigned you “Ship <it>”."
    (email,) = [
        mail for mail in await emails_to(database, assignee_email) if mail["template"] != "welcome"
    ]
    assert (email["_id"], email["template"]) == (
        f"task_assigned:{assigned.id}:{assignee}",
        "task_assigned",
    )
    assert email["context"] == {
        "name": "Ada",
        "task_id": task.id,
        "task_title": "Ship <it>",
        "assigned_by": "Grace",
    }
    assert await notifications_of(database, owner) == []


async def test_each_notification_is_published_as_notification_created(
    service: NotificationsSettings, database: Database
) -> None:
    owner, _ = await register(service, database, "Grace")
    assignee, _ = await register(service, database, "Ada")
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await declare_exchange(channel, service.event_topology)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="notification.created")
        task = task_message(owner, assignee_id=assignee)

        await publish(service, task_assigned(task, owner))
        message = await _next_message(queue)

    published = decode_event(message.body)
    (stored,) = await notifications_of(database, assignee)
    assert (published.type, published.source, published.subject) == (
        "notification.created",
        "taskmesh/notifications",
        assignee,
    )
    payload = published.payload
    assert isinstance(payload, events_pb2.NotificationCreated)
    assert payload.user_id == assignee
    assert (payload.notification.id, payload.notification.type) == (
        str(stored["_id"]),
        "task.assigned",
    )
    assert payload.notification.task_id == task.id


async def _next_message(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    async with asyncio.timeout(20):
        while True:
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                return message
            await asyncio.sleep(0.05)


async def test_assignee_who_turned_email_off_gets_the_notification_but_no_email(
    service: NotificationsSettings, database: Database
) -> None:
    owner, _ = await register(service, database, "Grace")
    assignee, assignee_email = await register(service, database, "Ada", email_notifications=False)
    assigned = task_assigned(task_message(owner, assignee_id=assignee), owner)

    await publish(service, assigned)
    await processed(database, assigned)

    assert len(await notifications_of(database, assignee)) == 1
    templates = [mail["template"] for mail in await emails_to(database, assignee_email)]
    assert templates == ["welcome"]


async def test_assigning_a_task_to_oneself_notifies_nobody(
    service: NotificationsSettings, database: Database
) -> None:
    owner, owner_email = await register(service, database, "Grace")
    assigned = task_assigned(task_message(owner, assignee_id=owner), owner)

    await publish(service, assigned)
    await processed(database, assigned)

    assert await notifications_of(database, owner) == []
    assert [mail["template"] for mail in await emails_to(database, owner_email)] == ["welcome"]


async def test_a_redelivered_assignment_makes_one_notification_and_one_email(
    service: NotificationsSettings, database: Database
) -> None:
    owner, _ = await register(service, database, "Grace")
    assignee, assignee_email = await register(service, database, "Ada")
    assigned = task_assigned(task_message(owner, assignee_id=assignee), owner)

    await publish(service, assigned)
    await processed(database, assigned)
    await publish(service, assigned)
    marker = user_registered(new_id(), "marker@example.com")
    await publish(service, marker)
    await processed(database, marker)

    assert len(await notifications_of(database, assignee)) == 1
    templates = sorted(mail["template"] for mail in await emails_to(database, assignee_email))
    assert templates == ["task_assigned", "welcome"]


async def test_assignment_to_a_user_without_a_copy_is_retried_then_notified_in_app_only(
    service: NotificationsSettings, database: Database, logs: CapturedLogs
) -> None:
    owner, _ = await register(service, database, "Grace")
    stranger = new_id()
    assigned = task_assigned(task_message(owner, assignee_id=stranger), owner)

    await publish(service, assigned)
    await processed(database, assigned)

    assert len(await notifications_of(database, stranger)) == 1
    assert await database.emails.count_documents({"template": "task_assigned"}) == 0
    retries = [
        line for line in logs.events("event.retry_scheduled") if line["event_id"] == assigned.id
    ]
    assert retries, "the event was not retried while the copy could still arrive"
    (missing,) = logs.events("notifications.recipient_missing")
    assert missing["user_id"] == stranger


async def test_a_copy_arriving_while_the_assignment_waits_gets_the_email(
    settings_factory: SettingsFactory, logs: CapturedLogs
) -> None:
    settings = settings_factory(events_retry_delays_s=(0.5, 0.5, 0.5, 5.0))
    owner, late = new_id(), new_id()
    assigned = task_assigned(task_message(owner, assignee_id=late), owner)
    async with running_service(SERVICE, settings), open_database(settings) as database:
        await consumer_started(logs)
        await publish(settings, assigned)
        await eventually(lambda: _true(bool(logs.events("event.retry_scheduled"))), what="a retry")
        await publish(settings, user_registered(late, "late@example.com", "Late"))
        await processed(database, assigned)

        templates = sorted(
            mail["template"] for mail in await emails_to(database, "late@example.com")
        )
        assert templates == ["task_assigned", "welcome"]
        assert len(await notifications_of(database, late)) == 1


# --- task.completed --------------------------------------------------------------------------


async def test_completion_by_the_assignee_notifies_the_owner_in_app(
    service: NotificationsSettings, database: Database
) -> None:
    owner, owner_email = await register(service, database, "Grace")
    assignee, _ = await register(service, database, "Ada")
    done = task_message(owner, assignee_id=assignee, done=True, version=2)
    completed = task_completed(done, assignee)

    await publish(service, completed)
    await processed(database, completed)

    (notification,) = await notifications_of(database, owner)
    assert (notification["type"], notification["task_id"], notification["body"]) == (
        "task.completed",
        done.id,
        "Ada completed “Write the report”.",
    )
    assert [mail["template"] for mail in await emails_to(database, owner_email)] == ["welcome"]


async def test_completion_by_the_owner_notifies_nobody(
    service: NotificationsSettings, database: Database
) -> None:
    owner, _ = await register(service, database, "Grace")
    assignee, _ = await register(service, database, "Ada")
    completed = task_completed(task_message(owner, assignee_id=assignee, done=True), owner)

    await publish(service, completed)
    await processed(database, completed)

    assert await notifications_of(database, owner) == []
    assert await notifications_of(database, assignee) == []


# --- the copies feed reminders -----------------------------------------------------------------


async def test_task_events_keep_the_due_date_copy(
    service: NotificationsSettings, database: Database
) -> None:
    owner = new_id()
    due = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    task = task_message(owner, due_at=due)
    created = task_created(task, owner)

    await publish(service, created)
    await processed(database, created)

    copy = await database.due_tasks.find_one({"_id": task.id})
    assert copy is not None
    assert (copy["owner_id"], copy["due_at"], copy["pending_due_at"], copy["version"]) == (
        owner,
        due,
        due,
        1,
    )
