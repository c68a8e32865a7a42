"""Composition root of the notifications service: builds its parts and hands them to the chassis."""

from __future__ import annotations

import os

from pymongo.asynchronous.database import AsyncDatabase
from taskmesh.notifications.v1 import notifications_pb2_grpc
from taskmesh_chassis.events import BackgroundConsumer, BackgroundRelay, Outbox
from taskmesh_chassis.grpc_server import ServicerRegistration
from taskmesh_chassis.identity import JwksProvider
from taskmesh_chassis.mongo import Document, ensure_indexes
from taskmesh_chassis.service import GrpcService, ServiceParts

from taskmesh_notifications.consumer import NotificationEvents, recipient_wait_s
from taskmesh_notifications.events import EVENT_SOURCE
from taskmesh_notifications.grpc_api import SERVICE_NAME, NotificationsServicer
from taskmesh_notifications.mail import Mail
from taskmesh_notifications.notifier import Notifier
from taskmesh_notifications.reminders import ReminderScheduler
from taskmesh_notifications.repository import (
    INDEXES,
    DueTasks,
    MongoNotificationStore,
    RecipientCopies,
    ensure_collections,
)
from taskmesh_notifications.service import NotificationsService
from taskmesh_notifications.settings import NotificationsSettings


def notifications_service(
    jwks_provider: JwksProvider | None = None,
) -> GrpcService[NotificationsSettings]:
    """The notifications service; callers' tokens are verified with keys from auth unless given."""

    async def compose(
        settings: NotificationsSettings, database: AsyncDatabase[Document]
    ) -> ServiceParts:
        """Wire the use cases, the consumer, the reminders and email to MongoDB and RabbitMQ."""
        outbox = Outbox(database, source=EVENT_SOURCE)
        mail = Mail(settings, database)
        await ensure_indexes(database, outbox.indexes())
        await ensure_indexes(database, mail.queue.indexes())
        await ensure_collections(database)
        notifications = MongoNotificationStore(database)
        recipients = RecipientCopies(database)
        tasks = DueTasks(database)
        notifier = Notifier(notifications, outbox, mail.queue)
        events = NotificationEvents(
            notifications,
            recipients,
            tasks,
            notifier,
            recipient_wait_s=recipient_wait_s(settings.events_retry_delays_s),
        )
        reminders = ReminderScheduler(
            tasks,
            recipients,
            notifier,
            outbox,
            interval_s=settings.reminder_scan_interval_s,
            lead_s=settings.reminder_lead_s,
            batch=settings.reminder_batch,
        )
        amqp_url = settings.amqp_url.get_secret_value()
        relay = BackgroundRelay(
            outbox,
            amqp_url,
            connection_name=f"taskmesh-notifications-relay-{os.getpid()}",
            topology=settings.event_topology,
        )
        consumer = BackgroundConsumer(
            service="notifications",
            database=database,
            handlers=events.handlers(),
            settings=settings,
            amqp_url=amqp_url,
            connection_name=f"taskmesh-notifications-consumer-{os.getpid()}",
        )
        servicer = NotificationsServicer(NotificationsService(notifications))
        add_servicer = notifications_pb2_grpc.add_NotificationsServiceServicer_to_server
        return ServiceParts(
            [ServicerRegistration(add_servicer, servicer, SERVICE_NAME)],
            on_startup=[relay.start, mail.start, consumer.start, reminders.start],
            on_shutdown=[reminders.stop, consumer.stop, mail.stop, relay.stop],
            jwks_provider=jwks_provider,
        )

    return GrpcService(NotificationsSettings, compose, indexes=INDEXES)


SERVICE = notifications_service()


def run() -> None:
    """Start the notifications service and serve until SIGTERM or SIGINT."""
    SERVICE.run()
