"""The sender: sends the queue's due emails over SMTP, retrying per the configured delays.

It wakes when this process queues an email, on start, when the next retry falls due, and
every `email_sweep_interval_s` regardless (for emails other instances queued, and records
whose sender crashed). Each record is claimed with a lease before it is sent, so two
instances never send it at once; a sender that dies mid-send leaves the lease to expire,
after which any instance sends the email again (with the same Message-ID).

An attempt that fails is retried after the next delay of `email_retry_delays_s`; after the
last one, or when the server refuses the message for good (5xx), the record is marked
failed. Logs name the template, key and attempt count, never the address, the context
(which may hold a reset token), the bodies or the SMTP password.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog
from aiosmtplib import SMTPResponseException
from pymongo.errors import PyMongoError
from taskmesh_chassis.events.relay import backoff_s

from taskmesh_notifications.mail import metrics
from taskmesh_notifications.mail.errors import InvalidEmail
from taskmesh_notifications.mail.message import compose_message
from taskmesh_notifications.mail.queue import Delivery, EmailQueue
from taskmesh_notifications.mail.settings import MailSettings
from taskmesh_notifications.mail.smtp import SMTP_ERRORS, SmtpClient, is_permanent
from taskmesh_notifications.mail.templates import EmailTemplate, render

log = structlog.get_logger(__name__)

# A whole attempt (connect, TLS, AUTH, MAIL, RCPT, DATA) may take this many SMTP timeouts.
SEND_DEADLINE_TIMEOUTS: Final = 3
# The lease outlives the attempt's deadline by as much again, for the writes around it.
LEASE_DEADLINES: Final = 2
_MAX_ERROR_LENGTH: Final = 500


def describe_error(error: BaseException) -> str:
    """A one-line account of why an attempt failed, for logs and `last_error`."""
    if isinstance(error, SMTPResponseException):
        text = f"{type(error).__name__}: {error.code} {error.message}"
    else:
        text = f"{type(error).__name__}: {error}".rstrip(": ")
    return " ".join(text.split())[:_MAX_ERROR_LENGTH]


class EmailSender:
    """Drains one email queue for as long as it runs; any number of instances may share it."""

    def __init__(self, queue: EmailQueue, settings: MailSettings, *, batch_size: int = 50) -> None:
        self._queue = queue
        self._settings = settings
        self._smtp = SmtpClient(
            settings.smtp_server, timeout_s=settings.smtp_timeout_s, ca_file=settings.smtp_ca_file
        )
        self._batch_size = batch_size
        self._sweep_interval_s = settings.email_sweep_interval_s
        self.send_deadline_s = settings.smtp_timeout_s * SEND_DEADLINE_TIMEOUTS
        self.lease_s = self.send_deadline_s * LEASE_DEADLINES
        self.owner = uuid.uuid4().hex
        self._wake = asyncio.Event()
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        """Start sending in the background, beginning with whatever is due now."""
        self._stopping = False
        self._stop_requested.clear()
        self._unsubscribe = self._queue.on_enqueue(self.wake)
        self._wake.set()
        self._run_task = asyncio.create_task(self._run(), name="email-sender")
        server = self._settings.smtp_server
        log.info(
            "email.sender_started",
            smtp_host=server.host,
            smtp_port=server.port,
            smtp_security=str(server.security),
        )

    async def stop(self, timeout_s: float | None = None) -> None:
        """Finish the send in flight (by default, at most its deadline and a bit), then stop.

        An email whose send is cut short keeps its lease and is sent again once it expires.
        """
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._run_task is not None:
            wait_s = self.send_deadline_s + 5.0 if timeout_s is None else timeout_s
            _, still_running = await asyncio.wait([self._run_task], timeout=wait_s)
            for task in still_running:
                task.cancel()
            await asyncio.gather(self._run_task, return_exceptions=True)
            self._run_task = None
        log.info("email.sender_stopped")

    def wake(self) -> None:
        """Ask for a pass soon (an email was queued)."""
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                wait_s = await self._send_due()
                failures = 0
            except Exception as error:
                # The emails wait in the queue whatever went wrong; the sender must go on.
                failures += 1
                delay = backoff_s(failures)
                fields = {"error": describe_error(error), "retry_in_s": delay}
                if isinstance(error, PyMongoError):
                    log.warning("email.sender_pass_failed", **fields)
                else:
                    log.exception("email.sender_pass_failed", **fields)
                await self._pause(delay)
                continue
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()

    async def _pause(self, delay_s: float) -> None:
        # Only stopping interrupts it: new emails must not turn backoff into a busy loop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):
                await self._stop_requested.wait()

    async def _send_due(self) -> float:
        """Send what is due; return how long to wait before the next pass."""
        now = datetime.now(UTC)
        horizon = now + timedelta(seconds=self._sweep_interval_s)
        batch = await self._queue.due(horizon, self._batch_size)
        for delivery in batch:
            if self._stopping:
                return 0.0
            if delivery.next_attempt_at > now:
                # Sorted by due time: the rest are later still.
                remaining = delivery.next_attempt_at - datetime.now(UTC)
                return max(0.0, remaining.total_seconds())
            await self._attempt(delivery)
        return 0.0 if len(batch) == self._batch_size else self._sweep_interval_s

    async def _attempt(self, delivery: Delivery) -> None:
        now = datetime.now(UTC)
        claimed = await self._queue.claim(
            delivery, owner=self.owner, now=now, lease_until=now + timedelta(seconds=self.lease_s)
        )
        if claimed is None:
            return
        if claimed.attempts > self._settings.email_max_attempts:
            # Earlier attempts ended without a result (their sender died): stop somewhere.
            await self._give_up(claimed, "attempts exhausted without a result")
            return
        try:
            template = _template(claimed.template)
            rendered = render(
                template, claimed.context, public_base_url=self._settings.public_base_url
            )
            message = compose_message(
                rendered,
                key=claimed.key,
                sender=self._settings.email_from,
                to=claimed.to,
                created_at=claimed.created_at,
            )
        except ValueError as error:
            # InvalidEmail, or a header value the email package refuses: no retry helps.
            await self._give_up(claimed, describe_error(error))
            return
        try:
            async with asyncio.timeout(self.send_deadline_s):
                await self._smtp.send(
                    message, sender=self._settings.sender_address, recipient=claimed.to
                )
        except SMTP_ERRORS as error:
            if is_permanent(error):
                await self._give_up(claimed, describe_error(error))
            else:
                await self._retry_later(claimed, describe_error(error))
            return
        metrics.EMAILS_SENT.labels(claimed.template).inc()
        marked = await self._queue.mark_sent(
            claimed.key, owner=self.owner, sent_at=datetime.now(UTC)
        )
        fields = {"template": claimed.template, "key": claimed.key, "attempts": claimed.attempts}
        if marked:
            log.info("email.sent", **fields)
        else:
            # The lease ran out before the send ended: another instance may send it again.
            log.warning("email.sent_after_lease_expired", **fields)

    async def _retry_later(self, delivery: Delivery, error: str) -> None:
        delays = self._settings.email_retry_delays_s
        if delivery.attempts > len(delays):
            await self._give_up(delivery, error)
            return
        delay_s = delays[delivery.attempts - 1]
        await self._queue.reschedule(
            delivery.key,
            owner=self.owner,
            next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay_s),
            error=error,
        )
        metrics.EMAIL_RETRIES.labels(delivery.template).inc()
        log.warning(
            "email.retry_scheduled",
            template=delivery.template,
            key=delivery.key,
            attempts=delivery.attempts,
            retry_in_s=delay_s,
            error=error,
        )

    async def _give_up(self, delivery: Delivery, error: str) -> None:
        await self._queue.mark_failed(
            delivery.key, owner=self.owner, failed_at=datetime.now(UTC), error=error
        )
        metrics.EMAIL_FAILURES.labels(delivery.template).inc()
        log.error(
            "email.failed",
            template=delivery.template,
            key=delivery.key,
            attempts=delivery.attempts,
            error=error,
        )


def _template(name: str) -> EmailTemplate:
    try:
        return EmailTemplate(name)
    except ValueError:
        raise InvalidEmail(f"unknown email template {name!r}") from None
