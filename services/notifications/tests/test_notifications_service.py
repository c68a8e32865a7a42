from __future__ import annotations

import uuid

import pytest
from taskmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from taskmesh_chassis.testing import GrpcServiceContract, find_free_port
from taskmesh_notifications.main import SERVICE
from taskmesh_notifications.settings import NotificationsSettings


class TestNotificationsService(GrpcServiceContract):
    service = SERVICE
    full_service_name = "taskmesh.notifications.v1.NotificationsService"
    stub_class = notifications_pb2_grpc.NotificationsServiceStub
    unimplemented_rpc = ("ListNotifications", notifications_pb2.ListNotificationsRequest())

    @pytest.fixture
    def settings(  # type: ignore[override]
        self, secantus_url: str, free_port: int
    ) -> NotificationsSettings:
        # The consumer points at a port nothing listens on: these tests must not create
        # queues on, or take events from, a broker other suites use.
        return NotificationsSettings(
            grpc_port=free_port,
            metrics_port=0,
            mongodb_url=secantus_url,
            mongodb_database_prefix=f"test_{uuid.uuid4().hex[:12]}_",
            amqp_url=f"amqp://guest:guest@127.0.0.1:{find_free_port()}/",
            shutdown_grace_s=1.0,
        )
