"""`/api/v1/notifications`: the caller's in-app notifications."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from taskmesh.notifications.v1 import notifications_pb2

from taskmesh_gateway.dependencies import Clients, CurrentUser
from taskmesh_gateway.schemas.common import Cursor, Limit, ResourceId, page_request
from taskmesh_gateway.schemas.notifications import (
    NotificationPage,
    notification_page_from_proto,
)
from taskmesh_gateway.schemas.problems import problem_responses

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


@router.get("", responses=problem_responses(401, 422))
async def list_notifications(
    caller: CurrentUser,
    clients: Clients,
    unread: Annotated[bool, Query(description="Only unread notifications")] = False,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> NotificationPage:
    """List the caller's notifications, newest first."""
    reply = await clients.notifications.ListNotifications(
        notifications_pb2.ListNotificationsRequest(
            page=page_request(limit, cursor), unread_only=unread
        )
    )
    return notification_page_from_proto(reply)


@router.post("/read-all", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401))
async def mark_all_notifications_read(caller: CurrentUser, clients: Clients) -> None:
    """Mark every notification of the caller read."""
    await clients.notifications.MarkAllRead(notifications_pb2.MarkAllReadRequest())


@router.post(
    "/{id}/read", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 404)
)
async def mark_notification_read(
    notification_id: Annotated[ResourceId, Path(alias="id")],
    caller: CurrentUser,
    clients: Clients,
) -> None:
    """Mark one notification read."""
    await clients.notifications.MarkRead(
        notifications_pb2.MarkReadRequest(notification_id=notification_id)
    )
