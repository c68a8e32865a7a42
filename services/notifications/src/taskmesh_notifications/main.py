"""Composition root of the notifications service: builds its parts and hands them to the chassis."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.notifications.v1 import notifications_pb2_grpc
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.mongo import Document
from taskmesh_chassis.service import GrpcService, ServiceParts

from taskmesh_notifications.grpc_api import SERVICE_NAME, NotificationsServicer
from taskmesh_notifications.settings import NotificationsSettings


async def compose(
    settings: NotificationsSettings, database: AsyncDatabase[Document]
) -> ServiceParts:
    """Wire the notifications servicer to its adapters."""
    add_servicer = notifications_pb2_grpc.add_NotificationsServiceServicer_to_server
    return ServiceParts([ServicerRegistration(add_servicer, NotificationsServicer(), SERVICE_NAME)])


SERVICE = GrpcService(NotificationsSettings, compose)


def run() -> None:
    """Start the notifications service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
