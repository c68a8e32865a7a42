"""Account deletion: what a `user.deleted` event asks of the tasks service, done in the background.

The event's handler only records a purge job (`user_purges`, `_id` = the user id) in the
event's own transaction: a user may own 100,000 tasks, and a transaction must stay short.
The purger, in every instance of the service, takes one job at a time under a lease and

1. deletes the user's own tasks, a batch at a time: the batch's attachments first, then in
   one outbox transaction each task still at the version read, with its `task.deleted`
   event, as DeleteTask does;
2. unassigns the user from the tasks of others, a batch at a time: in one transaction each
   task still assigned to them at the version read loses its assignee (version + 1), with a
   `task.updated` event naming `assignee_id`;
3. after each batch commits, invalidates the cached task lists of the other users it
   affected (assignees of the deleted tasks, owners of the unassigned ones);
4. removes the job.

Every step finds its work by reading what is left, so running any of it again — after a
crash, by another instance once the lease ran out, for a duplicate event — changes nothing
more. See docs/tasks.md, "Account deletion".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

import structlog
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.events import Event, UnprocessableEvent, call_after_commit

from taskmesh_tasks import events
from taskmesh_tasks.domain import (
    Change,
    Clock,
    PurgeJob,
    Task,
    apply_change,
    is_object_id,
    utc_now,
)
from taskmesh_tasks.list_cache import TaskListInvalidator
from taskmesh_tasks.repository import AttachmentStore, PurgeJobStore, TaskStore, TaskTransaction

log = structlog.get_logger(__name__)

LEASE_S: Final = 60.0
"""How long a claimed job is its holder's without renewal; renewed after every batch."""
JOBS_PER_READ: Final = 10
"""How long a recorded job waits for its transaction to end before the sweep is left to it."""
STOP_TIMEOUT_S: Final = 10.0


class _LeaseLost(Exception):
    """Another instance took the job over: this one was slower than its lease."""


class _Stopping(Exception):
    """The service is stopping: the job is handed back between two batches."""


@dataclass
class PurgeCounts:
    """What one run of a job did (a job taken over after a crash counts only its own run)."""

    tasks_deleted: int = 0
    attachments_deleted: int = 0
    tasks_unassigned: int = 0
    invalidated_user_ids: set[str] = field(default_factory=set)
    invalidation_failures: int = 0

    def log_fields(self) -> dict[str, int]:
        """The counts as log fields."""
        return {
            "tasks_deleted": self.tasks_deleted,
            "attachments_deleted": self.attachments_deleted,
            "tasks_unassigned": self.tasks_unassigned,
            "users_invalidated": len(self.invalidated_user_ids),
            "invalidation_failures": self.invalidation_failures,
        }


def job_from(event: Event) -> PurgeJob:
    """The purge job a `user.deleted` event asks for; UnprocessableEvent if it names nobody."""
    payload = event.payload
    if not isinstance(payload, events_pb2.UserDeleted) or not is_object_id(payload.user_id):
        raise UnprocessableEvent("user.deleted does not carry a valid user id")
    return PurgeJob(user_id=payload.user_id, actor_id=payload.actor_id, requested_at=event.time)


def new_holder_name() -> str:
    """A name for this process's leases, unique across hosts, processes and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class UserPurger:
    """Records purge jobs from `user.deleted` and carries them out in the background.

    It works when a job of this process commits, on start (jobs a crash or a stop left
    behind) and every `sweep_interval_s` (jobs recorded by other instances, or released
    after a failure).
    """

    def __init__(
        self,
        store: TaskStore,
        attachments: AttachmentStore,
        jobs: PurgeJobStore,
        lists: TaskListInvalidator,
        *,
        batch_size: int,
        sweep_interval_s: float,
        lease_s: float = LEASE_S,
        clock: Clock = utc_now,
        holder: str | None = None,
    ) -> None:
        self._store = store
        self._attachments = attachments
        self._jobs = jobs
        self._lists = lists
        self._batch_size = batch_size
        self._sweep_interval_s = sweep_interval_s
        self._lease = timedelta(seconds=lease_s)
        self._clock = clock
        self._holder = holder or new_holder_name()
        self._wake = asyncio.Event()
        self._stopping = False
        self._run_task: asyncio.Task[None] | None = None

    # --- the event handler ------------------------------------------------------------------

    async def record_purge(self, event: Event, session: AsyncClientSession) -> None:
        """Handle `user.deleted`: record the purge job in the event's transaction (idempotent).

        The purger wakes once that transaction has committed, when the job is visible.
        """
        job = job_from(event)
        await self._jobs.record(job, session)
        log.info("tasks.user_purge_recorded", user_id=job.user_id, actor_id=job.actor_id)
        call_after_commit(self._wake.set)

    # --- the background loop ----------------------------------------------------------------

    async def start(self) -> None:
        """Start purging in the background, beginning with the jobs already recorded."""
        self._stopping = False
        self._wake.set()
        self._run_task = asyncio.create_task(self._run(), name="user-purger")
        log.info("tasks.user_purger_started", holder=self._holder)

    async def stop(self) -> None:
        """Finish the batch in flight (at most STOP_TIMEOUT_S), hand the job back, stop."""
        self._stopping = True
        self._wake.set()
        if self._run_task is not None:
            _, still_running = await asyncio.wait([self._run_task], timeout=STOP_TIMEOUT_S)
            for task in still_running:
                task.cancel()
            await asyncio.gather(self._run_task, return_exceptions=True)
            self._run_task = None
            log.info("tasks.user_purger_stopped", holder=self._holder)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.purge_claimable()
            except Exception as error:
                # The jobs stay recorded; the next sweep tries again.
                self._log_failure(error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sweep_interval_s):
                    await self._wake.wait()

    async def purge_claimable(self) -> int:
        """Claim and carry out every job nobody holds; return how many this instance finished."""
        finished = 0
        while not self._stopping:
            jobs = await self._jobs.claimable(self._clock(), JOBS_PER_READ)
            claimed = False
            for job in jobs:
                if self._stopping:
                    break
                now = self._clock()
                if not await self._jobs.claim(job.user_id, self._holder, now, now + self._lease):
                    continue
                claimed = True
                finished += await self._purge_claimed(job)
            if not claimed:
                break
        return finished

    # --- one job ----------------------------------------------------------------------------

    async def _purge_claimed(self, job: PurgeJob) -> int:
        """Carry out a job this instance holds; 1 if it finished it, 0 if it let it go."""
        log.info(
            "tasks.user_purge_started",
            user_id=job.user_id,
            actor_id=job.actor_id,
            requested_at=job.requested_at.isoformat(),
        )
        started = time.perf_counter()
        counts = PurgeCounts()
        try:
            await self._delete_owned_tasks(job, counts)
            await self._unassign(job, counts)
        except _LeaseLost:
            log.warning("tasks.user_purge_lease_lost", user_id=job.user_id, **counts.log_fields())
            return 0
        except _Stopping:
            await self._hand_back(job, counts)
            return 0
        except asyncio.CancelledError:
            await self._hand_back(job, counts)
            raise
        except Exception as error:
            # Tried again after a sweep interval, by whichever instance claims it first.
            retry_at = self._clock() + timedelta(seconds=self._sweep_interval_s)
            with contextlib.suppress(PyMongoError):
                await self._jobs.release(job.user_id, self._holder, retry_at)
            self._log_failure(error, user_id=job.user_id, **counts.log_fields())
            return 0
        await self._jobs.finish(job.user_id, self._holder)
        log.info(
            "tasks.user_purge_finished",
            user_id=job.user_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            **counts.log_fields(),
        )
        return 1

    def _log_failure(self, error: Exception, **fields: object) -> None:
        fields.update(holder=self._holder, error=str(error) or type(error).__name__)
        if isinstance(error, PyMongoError):
            log.warning("tasks.user_purge_failed", **fields)
        else:
            log.exception("tasks.user_purge_failed", **fields)

    async def _hand_back(self, job: PurgeJob, counts: PurgeCounts) -> None:
        """Release the job at once, for the next instance (or this one restarted) to go on."""
        with contextlib.suppress(PyMongoError):
            await self._jobs.release(job.user_id, self._holder, self._clock())
        log.info("tasks.user_purge_paused", user_id=job.user_id, **counts.log_fields())

    async def _delete_owned_tasks(self, job: PurgeJob, counts: PurgeCounts) -> None:
        """Delete the user's tasks batch by batch, until a read finds none left."""
        while True:
            seen = 0
            batches = self._store.owned_batches(job.user_id, self._batch_size)
            async with contextlib.aclosing(batches):
                async for batch in batches:
                    seen += len(batch)
                    await self._delete_batch(job, batch, counts)
                    await self._keep_going(job)
            if not seen:
                return

    async def _delete_batch(self, job: PurgeJob, batch: list[Task], counts: PurgeCounts) -> None:
        for task in batch:
            counts.attachments_deleted += await self._attachments.delete_all(task.id)

        async def delete(tx: TaskTransaction) -> list[Task]:
            deleted = []
            for task in batch:
                if await tx.delete(task):
                    payload = events.task_deleted(task, job.actor_id)
                    tx.add_event(events.TASK_DELETED, subject=task.id, payload=payload)
                    deleted.append(task)
            return deleted

        deleted = await self._store.run_in_transaction(delete)
        counts.tasks_deleted += len(deleted)
        assignees = {task.assignee_id for task in deleted if task.assignee_id is not None}
        await self._invalidate(assignees - {job.user_id}, counts)

    async def _unassign(self, job: PurgeJob, counts: PurgeCounts) -> None:
        """Unassign the user from others' tasks batch by batch, until a read finds none left."""
        while True:
            seen = 0
            batches = self._store.assigned_batches(job.user_id, self._batch_size)
            async with contextlib.aclosing(batches):
                async for batch in batches:
                    seen += len(batch)
                    await self._unassign_batch(job, batch, counts)
                    await self._keep_going(job)
            if not seen:
                return

    async def _unassign_batch(self, job: PurgeJob, batch: list[Task], counts: PurgeCounts) -> None:
        now = self._clock()
        changes = [apply_change(task, {"assignee_id": None}, now) for task in batch]

        async def unassign(tx: TaskTransaction) -> list[Change]:
            saved = []
            for change in changes:
                if change.changed_fields and await tx.save(change) is not None:
                    payload = events.task_updated(change, job.actor_id)
                    tx.add_event(events.TASK_UPDATED, subject=change.after.id, payload=payload)
                    saved.append(change)
            return saved

        saved = await self._store.run_in_transaction(unassign)
        counts.tasks_unassigned += len(saved)
        owners = {change.before.owner_id for change in saved}
        await self._invalidate(owners - {job.user_id}, counts)

    async def _invalidate(self, user_ids: Collection[str], counts: PurgeCounts) -> None:
        if not user_ids:
            return
        if await self._lists.invalidate(user_ids):
            counts.invalidated_user_ids.update(user_ids)
        else:
            counts.invalidation_failures += 1

    async def _keep_going(self, job: PurgeJob) -> None:
        """Between two batches: stop if asked to, else renew the lease (or learn it is lost)."""
        if self._stopping:
            raise _Stopping()
        if not await self._jobs.renew(job.user_id, self._holder, self._clock() + self._lease):
            raise _LeaseLost()
