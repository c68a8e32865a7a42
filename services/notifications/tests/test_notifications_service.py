from __future__ import annotations

from taskmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from taskmesh_chassis.testing import GrpcServiceContract
from taskmesh_notifications.main import SERVICE


class TestNotificationsService(GrpcServiceContract):
    service = SERVICE
    full_service_name = "taskmesh.notifications.v1.NotificationsService"
    stub_class = notifications_pb2_grpc.NotificationsServiceStub
    unimplemented_rpc = ("ListNotifications", notifications_pb2.ListNotificationsRequest())
