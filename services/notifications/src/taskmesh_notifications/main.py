"""Composition root of the notifications service: builds its parts and hands them to the chassis."""

from __future__ import annotations

import os

from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.notifications.v1 import notifications_pb2_grpc
from taskmesh_chassis.events import BackgroundConsumer
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.mongo import Document
from taskmesh_chassis.service import GrpcService, ServiceParts

from taskmesh_notifications.events import NotificationEvents
from taskmesh_notifications.grpc_api import SERVICE_NAME, NotificationsServicer
from taskmesh_notifications.repository import INDEXES, MongoNotificationStore
from taskmesh_notifications.settings import NotificationsSettings


async def compose(
    settings: NotificationsSettings, database: AsyncDatabase[Document]
) -> ServiceParts:
    """Wire the servicer and the event handlers to MongoDB; consume events in the background."""
    consumer = BackgroundConsumer(
        service="notifications",
        database=database,
        handlers=NotificationEvents(MongoNotificationStore(database)).handlers(),
        settings=settings,
        amqp_url=settings.amqp_url.get_secret_value(),
        connection_name=f"taskmesh-notifications-consumer-{os.getpid()}",
    )
    add_servicer = notifications_pb2_grpc.add_NotificationsServiceServicer_to_server
    return ServiceParts(
        [ServicerRegistration(add_servicer, NotificationsServicer(), SERVICE_NAME)],
        on_startup=[consumer.start],
        on_shutdown=[consumer.stop],
    )


SERVICE = GrpcService(NotificationsSettings, compose, indexes=INDEXES)


def run() -> None:
    """Start the notifications service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
