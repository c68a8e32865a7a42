"""The gRPC edge of the notifications service: protobuf messages in, domain calls, messages out.

No RPC is implemented yet: the generated base class answers UNIMPLEMENTED for each one.
"""

from __future__ import annotations

from taskmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc

SERVICE_NAME: str = notifications_pb2.DESCRIPTOR.services_by_name["NotificationsService"].full_name


class NotificationsServicer(notifications_pb2_grpc.NotificationsServiceServicer):  # type: ignore[misc]
    """Serves taskmesh.notifications.v1.NotificationsService."""
