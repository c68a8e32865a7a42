"""Due-soon reminders: a scheduler in every instance of the service, exactly once per due date.

Every `interval_s` (and at start) a pass reads the task copies whose pending reminder falls
in (now, now + lead] — at most `batch` of them, soonest first, from the sparse index on
`pending_due_at` — and reminds of each in its own transaction:

1. clear the task's `pending_due_at`, conditional on the version and due date read (of two
   instances racing, one wins; the other meets a write conflict, retries, and finds
   nothing to clear);
2. insert the reminder's record, `_id` = "<task id>:<due date>": a duplicate key means that
   due date was reminded of before (the pending mark came back), and nothing is sent;
3. for the owner and the assignee (if someone else), unless deleted: an in-app
   `task.due_soon` notification with its `notification.created` event, and the email if
   their copy wants email (none without a copy), the due date in their time zone.

All of it commits together or not at all, so a crash anywhere leaves the reminder pending
for the next pass of any instance. A full batch is followed by the next pass at once.
Moving the due date makes a new key: the reminder is armed again.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import Final

import structlog
from pymongo.errors import DuplicateKeyError
from taskmesh_chassis.events import Outbox, UnitOfWork

from taskmesh_notifications import metrics
from taskmesh_notifications.domain import (
    DEFAULT_TIMEZONE,
    Clock,
    TaskCopy,
    due_soon_notice,
    format_local,
    utc_now,
)
from taskmesh_notifications.emails import due_soon_email
from taskmesh_notifications.notifier import Notifier
from taskmesh_notifications.repository import DueTasks, RecipientCopies

log = structlog.get_logger(__name__)

STOP_TIMEOUT_S: Final = 10.0


class ReminderOutcome(StrEnum):
    """What one reminder attempt came to."""

    SENT = "sent"
    TAKEN = "taken"
    """Another instance reminded of it, or the task changed since the scan."""
    DUPLICATE = "duplicate"
    """That due date was reminded of before."""
    FAILED = "failed"


class _AlreadyReminded(Exception):
    pass


class ReminderScheduler:
    """Finds the tasks due soon and reminds their people, in the background."""

    def __init__(
        self,
        tasks: DueTasks,
        recipients: RecipientCopies,
        notifier: Notifier,
        outbox: Outbox,
        *,
        interval_s: float,
        lead_s: float,
        batch: int,
        clock: Clock = utc_now,
    ) -> None:
        self._tasks = tasks
        self._recipients = recipients
        self._notifier = notifier
        self._outbox = outbox
        self._interval_s = interval_s
        self._lead = timedelta(seconds=lead_s)
        self._batch = batch
        self._clock = clock
        self._stopping = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start scanning in the background; the first pass runs at once."""
        self._stopping.clear()
        self._run_task = asyncio.create_task(self._run(), name="reminder-scheduler")
        log.info("notifications.reminders_started", interval_s=self._interval_s)

    async def stop(self) -> None:
        """Let the reminder in flight finish (at most STOP_TIMEOUT_S), then stop."""
        self._stopping.set()
        if self._run_task is not None:
            _, still_running = await asyncio.wait([self._run_task], timeout=STOP_TIMEOUT_S)
            for task in still_running:
                task.cancel()
            await asyncio.gather(self._run_task, return_exceptions=True)
            self._run_task = None
            log.info("notifications.reminders_stopped")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            again = False
            try:
                again = await self.run_pass()
            except Exception as error:
                # The reminders stay pending; the next pass tries again.
                log.error(
                    "notifications.reminder_pass_failed",
                    error_type=type(error).__name__,
                    error=str(error),
                )
            if again:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._stopping.wait()

    async def run_pass(self) -> bool:
        """Remind of up to `batch` tasks due soon; True when more may be waiting right now."""
        now = self._clock()
        due = await self._tasks.pending_between(now, now + self._lead, self._batch)
        failed = False
        for task in due:
            if self._stopping.is_set():
                return False
            outcome = await self.remind(task)
            failed = failed or outcome is ReminderOutcome.FAILED
        return len(due) == self._batch and not failed

    async def remind(self, task: TaskCopy) -> ReminderOutcome:
        """Remind the task's people of its due date, unless someone did already."""
        try:
            sent = await self._outbox.run_in_transaction(lambda uow: self._remind_in(task, uow))
            outcome = ReminderOutcome.SENT if sent else ReminderOutcome.TAKEN
            if sent:
                self._notifier.emails_committed()
        except _AlreadyReminded:
            await self._tasks.drop_pending(task)
            outcome = ReminderOutcome.DUPLICATE
        except Exception as error:
            log.error(
                "notifications.reminder_failed",
                task_id=task.id,
                error_type=type(error).__name__,
                error=str(error),
            )
            outcome = ReminderOutcome.FAILED
        metrics.REMINDERS.labels(outcome.value).inc()
        if outcome is not ReminderOutcome.FAILED:
            log.info("notifications.reminder", task_id=task.id, outcome=outcome.value)
        return outcome

    async def _remind_in(self, task: TaskCopy, uow: UnitOfWork) -> bool:
        session = uow.session
        assert task.due_at is not None
        if not await self._tasks.take_reminder(task, session):
            return False
        try:
            await self._tasks.record_reminder(task, self._clock(), session)
        except DuplicateKeyError:
            raise _AlreadyReminded from None
        for user_id in task.people():
            lookup = await self._recipients.lookup(user_id, session)
            if lookup.deleted:
                continue
            recipient = lookup.recipient
            due_local = format_local(
                task.due_at, recipient.timezone if recipient else DEFAULT_TIMEZONE
            )
            await self._notifier.notify(due_soon_notice(task, user_id, due_local), session)
            if recipient is not None and recipient.email_notifications:
                await self._notifier.email(
                    partial(due_soon_email, recipient, task, due_local), session, user_id=user_id
                )
        return True
