"""Answers of `/api/v1/notifications`."""

from __future__ import annotations

from pydantic import BaseModel
from taskmesh.notifications.v1 import notifications_pb2

from taskmesh_gateway.schemas.common import (
    Page,
    UtcDatetime,
    datetime_from_proto,
    next_cursor_from_proto,
)


class Notification(BaseModel):
    """An in-app notification."""

    id: str
    type: str
    title: str
    body: str
    task_id: str | None
    read: bool
    created_at: UtcDatetime


class NotificationPage(Page[Notification]):
    """A page of notifications, newest first."""


def notification_from_proto(notification: notifications_pb2.Notification) -> Notification:
    """Convert a proto Notification."""
    return Notification(
        id=notification.id,
        type=notification.type,
        title=notification.title,
        body=notification.body,
        task_id=notification.task_id if notification.HasField("task_id") else None,
        read=notification.read,
        created_at=datetime_from_proto(notification.created_at),
    )


def notification_page_from_proto(
    response: notifications_pb2.ListNotificationsResponse,
) -> NotificationPage:
    """Convert a ListNotifications answer."""
    return NotificationPage(
        items=[notification_from_proto(item) for item in response.notifications],
        next_cursor=next_cursor_from_proto(response.page),
    )
