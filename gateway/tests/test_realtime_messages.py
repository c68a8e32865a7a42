"""What each forwarded event becomes on the WebSocket, and whose sockets receive it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.common.v1 import common_pb2
from taskmesh.events.v1 import events_pb2
from taskmesh.notifications.v1 import notifications_pb2
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_chassis.events import Event, decode_event, encode_event
from taskmesh_chassis.events.envelope import new_event
from taskmesh_chassis.identity import Caller
from taskmesh_gateway.dependencies import get_current_user
from taskmesh_gateway.realtime.messages import FORWARDED_EVENT_TYPES, Push, push_for

OWNER, ASSIGNEE, PREVIOUS, ACTOR = "user-owner", "user-assignee", "user-previous", "user-actor"
CHANGED = datetime(2026, 11, 28, 9, 42, 14, 123000, tzinfo=UTC)


def timestamp(value: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(value)
    return result


def task(**changes: Any) -> tasks_pb2.Task:
    fields: dict[str, Any] = {
        "id": "task-1",
        "owner_id": OWNER,
        "assignee_id": ASSIGNEE,
        "title": "Write the report",
        "description": "by Friday",
        "status": tasks_pb2.STATUS_IN_PROGRESS,
        "priority": tasks_pb2.PRIORITY_HIGH,
        "due_at": timestamp(CHANGED),
        "tags": ["work"],
        "created_at": timestamp(CHANGED),
        "updated_at": timestamp(CHANGED),
        "version": 3,
    }
    return tasks_pb2.Task(**(fields | changes))


def notification() -> notifications_pb2.Notification:
    return notifications_pb2.Notification(
        id="note-1",
        type="task.assigned",
        title="A task for you",
        body="Write the report",
        task_id="task-1",
        read=False,
        created_at=timestamp(CHANGED),
    )


def event(event_type: str, payload: Message) -> Event:
    """The event as a consumer decodes it from the wire."""
    return decode_event(
        encode_event(new_event(event_type, source="test", subject="s", payload=payload))
    )


def pushed(event_type: str, payload: Message) -> tuple[Push, dict[str, Any]]:
    push = push_for(event(event_type, payload))
    assert push is not None
    return push, json.loads(push.text)


def test_the_forwarded_types_are_the_user_facing_ones() -> None:
    assert set(FORWARDED_EVENT_TYPES) == {
        "task.created",
        "task.updated",
        "task.deleted",
        "task.assigned",
        "notification.created",
    }


def test_a_message_carries_type_data_event_id_and_time() -> None:
    sent = event("task.created", events_pb2.TaskCreated(task=task(), actor_id=ACTOR))

    push = push_for(sent)

    assert push is not None
    message = json.loads(push.text)
    assert set(message) == {"type", "data", "id", "time"}
    assert message["type"] == "task.created"
    assert message["id"] == sent.id
    assert message["time"] == sent.time.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_task_event_carries_the_task_as_rest_shows_it() -> None:
    _, message = pushed("task.updated", events_pb2.TaskUpdated(task=task(), actor_id=ACTOR))

    assert message["data"] == {
        "id": "task-1",
        "owner_id": OWNER,
        "assignee_id": ASSIGNEE,
        "title": "Write the report",
        "description": "by Friday",
        "status": "in_progress",
        "priority": "high",
        "due_at": "2026-11-28T09:42:14.123Z",
        "tags": ["work"],
        "created_at": "2026-11-28T09:42:14.123Z",
        "updated_at": "2026-11-28T09:42:14.123Z",
        "completed_at": None,
        "version": 3,
    }


async def test_the_task_data_is_byte_for_byte_what_get_task_answers(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    stored = task()

    class Tasks:
        async def GetTask(self, request: tasks_pb2.GetTaskRequest, **_: Any) -> tasks_pb2.Task:
            return stored

    app.state.clients = type("Clients", (), {"tasks": Tasks()})()
    app.dependency_overrides[get_current_user] = lambda: Caller(
        OWNER, "user", "jti", "sid", 0.0, 9e9, "token"
    )
    rest = await client.get("/api/v1/tasks/task-1")
    push, _ = pushed("task.created", events_pb2.TaskCreated(task=stored, actor_id=ACTOR))

    assert rest.status_code == 200
    assert push.text.split('"data":', 1)[1].startswith(rest.text)


def test_a_task_event_goes_to_its_owner_and_assignee() -> None:
    push, _ = pushed("task.created", events_pb2.TaskCreated(task=task(), actor_id=ACTOR))

    assert push.recipients == {OWNER, ASSIGNEE}


def test_an_unassigned_task_event_goes_to_its_owner_only() -> None:
    unassigned = task()
    unassigned.ClearField("assignee_id")

    push, message = pushed("task.updated", events_pb2.TaskUpdated(task=unassigned))

    assert push.recipients == {OWNER}
    assert message["data"]["assignee_id"] is None


def test_an_unassignment_also_goes_to_the_previous_assignee() -> None:
    unassigned = task()
    unassigned.ClearField("assignee_id")
    payload = events_pb2.TaskUpdated(
        task=unassigned, changed_fields=["assignee_id"], previous_assignee_id=ASSIGNEE
    )

    push, message = pushed("task.updated", payload)

    assert push.recipients == {OWNER, ASSIGNEE}
    assert message["data"]["assignee_id"] is None


def test_an_assignment_also_goes_to_the_previous_assignee() -> None:
    payload = events_pb2.TaskAssigned(task=task(), previous_assignee_id=PREVIOUS, actor_id=ACTOR)

    push, message = pushed("task.assigned", payload)

    assert push.recipients == {OWNER, ASSIGNEE, PREVIOUS}
    assert message["data"]["assignee_id"] == ASSIGNEE


def test_a_deletion_carries_the_id_owner_and_assignee() -> None:
    payload = events_pb2.TaskDeleted(task_id="task-1", owner_id=OWNER, assignee_id=ASSIGNEE)

    push, message = pushed("task.deleted", payload)

    assert push.recipients == {OWNER, ASSIGNEE}
    assert message["data"] == {"id": "task-1", "owner_id": OWNER, "assignee_id": ASSIGNEE}


def test_a_deletion_of_an_unassigned_task_has_a_null_assignee() -> None:
    push, message = pushed("task.deleted", events_pb2.TaskDeleted(task_id="task-1", owner_id=OWNER))

    assert push.recipients == {OWNER}
    assert message["data"]["assignee_id"] is None


def test_a_notification_goes_to_its_recipient_only_as_rest_shows_it() -> None:
    payload = events_pb2.NotificationCreated(user_id=ASSIGNEE, notification=notification())

    push, message = pushed("notification.created", payload)

    assert push.recipients == {ASSIGNEE}
    assert message["data"] == {
        "id": "note-1",
        "type": "task.assigned",
        "title": "A task for you",
        "body": "Write the report",
        "task_id": "task-1",
        "read": False,
        "created_at": "2026-11-28T09:42:14.123Z",
    }


def test_events_that_are_not_forwarded_make_no_message() -> None:
    completed = event("task.completed", events_pb2.TaskCompleted(task=task(), actor_id=ACTOR))
    role_changed = event(
        "user.role_changed",
        events_pb2.UserRoleChanged(user_id=OWNER, new_role=common_pb2.ROLE_ADMIN),
    )

    assert push_for(completed) is None
    assert push_for(role_changed) is None


def test_a_payload_of_the_wrong_kind_makes_no_message() -> None:
    mislabelled = Event(
        id="e-1",
        type="task.created",
        source="test",
        subject="task-1",
        time=CHANGED,
        payload=events_pb2.TaskDeleted(task_id="task-1", owner_id=OWNER),
    )

    assert push_for(mislabelled) is None
