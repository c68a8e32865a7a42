"""The gRPC edge of the notifications service: protobuf messages in, use cases, messages out.

The caller is the one the verified access token names (taskmesh_chassis.identity); every
RPC works on the caller's own notifications only. Domain errors become their gRPC status in
the chassis' error scope.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.empty_pb2 import Empty
from taskmesh.common.v1 import common_pb2
from taskmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from taskmesh_chassis.identity import require_caller

from taskmesh_notifications.domain import Viewer
from taskmesh_notifications.events import notification_to_proto
from taskmesh_notifications.service import NotificationsService

SERVICE_NAME: str = notifications_pb2.DESCRIPTOR.services_by_name["NotificationsService"].full_name


def current_viewer() -> Viewer:
    """The verified caller of this RPC; Unauthenticated when there is none."""
    return Viewer(user_id=require_caller().user_id)


class NotificationsServicer(notifications_pb2_grpc.NotificationsServiceServicer):  # type: ignore[misc]
    """Serves taskmesh.notifications.v1.NotificationsService."""

    def __init__(self, service: NotificationsService) -> None:
        self._service = service

    async def ListNotifications(
        self, request: notifications_pb2.ListNotificationsRequest, context: Any
    ) -> notifications_pb2.ListNotificationsResponse:
        """List the caller's notifications, newest first, paged by cursor."""
        page = await self._service.list_notifications(
            current_viewer(),
            unread_only=request.unread_only,
            limit=request.page.limit,
            cursor=request.page.cursor,
        )
        return notifications_pb2.ListNotificationsResponse(
            notifications=[notification_to_proto(item) for item in page.notifications],
            page=common_pb2.PageInfo(next_cursor=page.next_cursor or ""),
        )

    async def MarkRead(self, request: notifications_pb2.MarkReadRequest, context: Any) -> Empty:
        """Mark one of the caller's notifications read; NOT_FOUND if it is not theirs."""
        await self._service.mark_read(current_viewer(), request.notification_id)
        return Empty()

    async def MarkAllRead(
        self, request: notifications_pb2.MarkAllReadRequest, context: Any
    ) -> Empty:
        """Mark every notification of the caller read."""
        await self._service.mark_all_read(current_viewer())
        return Empty()
