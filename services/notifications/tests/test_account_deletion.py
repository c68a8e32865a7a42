"""`user.deleted` in the notifications service, against real SecantusDB and RabbitMQ."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from taskmesh_chassis.testing import CapturedLogs, capture_logs, running_service
from taskmesh_notifications.settings import NotificationsSettings

from .conftest import (
    SERVICE,
    Database,
    eventually,
    new_id,
    publish,
    user_deleted,
    user_registered,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def logs() -> CapturedLogs:
    return capture_logs("notifications")


def notification(user_id: str, minutes_ago: int) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "type": "task.assigned",
        "title": "A task for you",
        "body": "",
        "task_id": str(ObjectId()),
        "read": False,
        "created_at": datetime.now(UTC) - timedelta(minutes=minutes_ago),
    }


async def test_user_deleted_deletes_only_that_users_notifications_and_copy(
    settings: NotificationsSettings, database: Database, logs: CapturedLogs
) -> None:
    gone, staying = new_id(), new_id()
    async with running_service(SERVICE, settings):

        async def consumer_started() -> bool:
            return bool(logs.events("events.consumer_started"))

        await eventually(consumer_started, what="the consumer to start")
        registered = [
            user_registered(gone, "gone@example.com"),
            user_registered(staying, "staying@example.com"),
        ]
        await publish(settings, *registered)
        await database.notifications.insert_many(
            [notification(gone, minutes) for minutes in range(3)]
            + [notification(staying, minutes) for minutes in range(2)]
        )
        deleted = user_deleted(gone)
        await publish(settings, deleted)

        async def processed() -> bool:
            ids = [event.id for event in (*registered, deleted)]
            return await database.processed_events.count_documents({"_id": {"$in": ids}}) == 3

        await eventually(processed, what="the events to be processed")

    remaining = await database.notifications.find().to_list()
    assert sorted(document["user_id"] for document in remaining) == [staying, staying]
    assert [copy["_id"] async for copy in database.recipients.find()] == [staying]
    tombstone = await database.deleted_users.find_one({"_id": gone})
    assert tombstone is not None
    assert set(tombstone) == {"_id", "deleted_at"}
    (deleted_line,) = logs.events("notifications.user_notifications_deleted")
    assert (deleted_line["user_id"], deleted_line["count"]) == (gone, 3)
