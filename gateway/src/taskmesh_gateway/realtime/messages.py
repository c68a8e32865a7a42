"""What the sockets receive: each forwarded event as one JSON message, and whose sockets.

`{"type": "<event type>", "data": {...}, "id": "<event id>", "time": "<RFC 3339 Z>"}`, where
`data` is what the REST API answers for the same thing: the Task, `{"id", "owner_id",
"assignee_id"}` for a deleted task, the Notification.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.events import Event

from taskmesh_gateway.schemas.common import format_timestamp
from taskmesh_gateway.schemas.notifications import notification_from_proto
from taskmesh_gateway.schemas.tasks import task_from_proto

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Push:
    """One message for the sockets of `recipients` (user ids)."""

    event_type: str
    recipients: frozenset[str]
    text: str
    event_time: float
    """When the change happened (epoch seconds), to measure delivery latency."""


Routed = tuple[Iterable[str], dict[str, Any]]
"""Who receives an event and its `data`."""


def _task_change(event: Event) -> Routed | None:
    payload = event.payload
    if not isinstance(payload, events_pb2.TaskCreated | events_pb2.TaskUpdated):
        return None
    task = payload.task
    recipients = [task.owner_id, task.assignee_id]
    if isinstance(payload, events_pb2.TaskUpdated):
        # An unassigned or reassigned task leaves the previous assignee's view: tell them too.
        recipients.append(payload.previous_assignee_id)
    return recipients, task_from_proto(task).model_dump(mode="json")


def _task_assignment(event: Event) -> Routed | None:
    payload = event.payload
    if not isinstance(payload, events_pb2.TaskAssigned):
        return None
    task = payload.task
    recipients = (task.owner_id, task.assignee_id, payload.previous_assignee_id)
    return recipients, task_from_proto(task).model_dump(mode="json")


def _task_deletion(event: Event) -> Routed | None:
    payload = event.payload
    if not isinstance(payload, events_pb2.TaskDeleted):
        return None
    data = {
        "id": payload.task_id,
        "owner_id": payload.owner_id,
        "assignee_id": payload.assignee_id or None,
    }
    return (payload.owner_id, payload.assignee_id), data


def _new_notification(event: Event) -> Routed | None:
    payload = event.payload
    if not isinstance(payload, events_pb2.NotificationCreated):
        return None
    return (payload.user_id,), notification_from_proto(payload.notification).model_dump(mode="json")


_ROUTES: Final[Mapping[str, Callable[[Event], Routed | None]]] = {
    "task.created": _task_change,
    "task.updated": _task_change,
    "task.assigned": _task_assignment,
    "task.deleted": _task_deletion,
    "notification.created": _new_notification,
}

FORWARDED_EVENT_TYPES: Final = tuple(_ROUTES)
"""The event types pushed to sockets: the binding keys of each instance's queue."""


def push_for(event: Event) -> Push | None:
    """The message an event makes and who receives it; None for an event not forwarded."""
    route = _ROUTES.get(event.type)
    routed = route(event) if route is not None else None
    if routed is None:
        log.warning("websocket.event_skipped", **event.log_fields(), schema=event.data_schema)
        return None
    recipients, data = routed
    message = {
        "type": event.type,
        "data": data,
        "id": event.id,
        "time": format_timestamp(event.time),
    }
    return Push(
        event_type=event.type,
        recipients=frozenset(user_id for user_id in recipients if user_id),
        text=json.dumps(message, ensure_ascii=False, separators=(",", ":")),
        event_time=event.time.timestamp(),
    )
