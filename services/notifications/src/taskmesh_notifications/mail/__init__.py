"""Email delivery: templates, a queue of delivery records in MongoDB, and the SMTP sender.

settings   MailSettings: the SMTP_* and EMAIL_* variables, and PUBLIC_BASE_URL
templates  EmailTemplate, render(): subject, plain text and HTML of each email
queue      EmailMessage, EmailQueue: one delivery record per email key, in `emails`
message    the MIME message of a delivery (stable Message-ID per key)
smtp       the SMTP_URL schemes and sending one message with aiosmtplib
sender     EmailSender: claims due records with a lease, sends, retries, gives up
metrics    Prometheus counters of sent, retried and failed emails

A service builds one `Mail`, ensures `EMAIL_INDEXES` at start-up, queues emails with
`mail.queue.enqueue(...)` in its transactions, and runs `mail.start`/`mail.stop` as hooks.
"""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from taskmesh_chassis.mongo import Document

from taskmesh_notifications.mail.errors import InvalidEmail
from taskmesh_notifications.mail.queue import EMAIL_INDEXES, EmailMessage, EmailQueue
from taskmesh_notifications.mail.sender import EmailSender
from taskmesh_notifications.mail.settings import MailSettings
from taskmesh_notifications.mail.templates import EmailTemplate, RenderedEmail, render


class Mail:
    """The email delivery of one service instance: its queue and the sender draining it."""

    def __init__(self, settings: MailSettings, database: AsyncDatabase[Document]) -> None:
        self.queue = EmailQueue(database)
        self.sender = EmailSender(self.queue, settings)

    async def start(self) -> None:
        """Start sending queued emails in the background (a service start-up hook)."""
        await self.sender.start()

    async def stop(self) -> None:
        """Finish the email being sent, then stop (a service shutdown hook)."""
        await self.sender.stop()


__all__ = [
    "EMAIL_INDEXES",
    "EmailMessage",
    "EmailQueue",
    "EmailSender",
    "EmailTemplate",
    "InvalidEmail",
    "Mail",
    "MailSettings",
    "RenderedEmail",
    "render",
]
