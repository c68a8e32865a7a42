"""The events the notifications service publishes: `notification.created` and its payload."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.events.v1 import events_pb2
from taskmesh.notifications.v1 import notifications_pb2

from taskmesh_notifications.domain import Notification

EVENT_SOURCE: Final = "taskmesh/notifications"

NOTIFICATION_CREATED: Final = "notification.created"


def timestamp(moment: datetime) -> Timestamp:
    """The protobuf Timestamp of a moment."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def notification_to_proto(notification: Notification) -> notifications_pb2.Notification:
    """The Notification message of a notification."""
    message = notifications_pb2.Notification(
        id=notification.id,
        type=notification.type,
        title=notification.title,
        body=notification.body,
        read=notification.read,
        created_at=timestamp(notification.created_at),
    )
    if notification.task_id is not None:
        message.task_id = notification.task_id
    return message


def notification_created(notification: Notification) -> events_pb2.NotificationCreated:
    """A new notification for its recipient (the event's subject is the recipient's id)."""
    return events_pb2.NotificationCreated(
        user_id=notification.user_id, notification=notification_to_proto(notification)
    )
