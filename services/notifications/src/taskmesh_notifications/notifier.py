"""Creating notifications and queueing emails inside the caller's MongoDB transaction.

An in-app notification is stored together with its `notification.created` event (through
the outbox, in the same transaction), so the push reaches the gateway exactly when the
notification exists. An email is a delivery record in the mail queue, in the same
transaction too: the sender picks it up once it commits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession
from taskmesh_chassis.events import Outbox

from taskmesh_notifications import metrics
from taskmesh_notifications.domain import Clock, NewNotification, Notification, utc_now
from taskmesh_notifications.events import NOTIFICATION_CREATED, notification_created
from taskmesh_notifications.mail.errors import InvalidEmail
from taskmesh_notifications.mail.queue import EmailMessage
from taskmesh_notifications.repository import MongoNotificationStore

log = structlog.get_logger(__name__)


class EmailQueue(Protocol):
    """Where emails are queued (`mail.queue.EmailQueue`)."""

    async def enqueue(self, message: EmailMessage, session: AsyncClientSession) -> bool:
        """Record the email in the caller's transaction; False if its key was queued before."""
        ...

    async def forget_user(self, user_id: str, session: AsyncClientSession) -> int:
        """Delete every email record of the account, sent or not."""
        ...

    def wake_senders(self) -> None:
        """Tell this process's senders that emails were committed outside an event handler."""
        ...


class Notifier:
    """Stores notifications with their event, and queues emails, in the caller's transaction."""

    def __init__(
        self,
        notifications: MongoNotificationStore,
        outbox: Outbox,
        emails: EmailQueue,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._notifications = notifications
        self._outbox = outbox
        self._emails = emails
        self._clock = clock

    async def notify(self, new: NewNotification, session: AsyncClientSession) -> Notification:
        """Store an in-app notification and its `notification.created` event; return it."""
        notification = await self._notifications.insert(new, self._clock(), session)
        await self._outbox.add_event(
            session,
            NOTIFICATION_CREATED,
            subject=notification.user_id,
            payload=notification_created(notification),
        )
        metrics.NOTIFICATIONS_CREATED.labels(notification.type).inc()
        log.info(
            "notification.created",
            notification_id=notification.id,
            user_id=notification.user_id,
            type=notification.type,
            task_id=notification.task_id,
        )
        return notification

    async def email(
        self, build: Callable[[], EmailMessage], session: AsyncClientSession, *, user_id: str
    ) -> bool:
        """Queue the email `build` makes (once per key); False when not queued.

        Not queued when its key was queued before, or when no email can be made of what the
        copies hold (an address the mail queue refuses): that is logged, and the
        notification that goes with it stands.
        """
        try:
            message = build()
        except InvalidEmail as error:
            log.warning("notifications.email_invalid", user_id=user_id, error=str(error))
            return False
        queued = await self._emails.enqueue(message, session)
        log.info(
            "notifications.email_queued",
            email_key=message.key,
            template=message.template.value,
            queued=queued,
        )
        return queued

    async def forget_user(self, user_id: str, session: AsyncClientSession) -> int:
        """Delete the account's email records: pending ones are never sent, sent ones forgotten."""
        return await self._emails.forget_user(user_id, session)

    def emails_committed(self) -> None:
        """After a transaction of our own (not an event handler's) committed emails: send them."""
        self._emails.wake_senders()
