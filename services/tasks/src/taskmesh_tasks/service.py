"""The tasks service's use cases: tasks, their lists and their attachments, for one viewer.

Every write is conditional on the version read (`update_one({_id, version})`), inside the
outbox transaction that records its events; a write that finds the version moved on is a
VersionConflict when the caller named the version it expected, and is recomputed from the
fresh task otherwise. Each write reports the users whose task lists it may have changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import structlog
from taskmesh_chassis.errors import Conflict

from taskmesh_tasks import events
from taskmesh_tasks.directory import UserDirectory, UserState
from taskmesh_tasks.domain import (
    WRITABLE_FIELDS,
    Attachment,
    AttachmentNotFound,
    AttachmentTooLarge,
    Change,
    Clock,
    NotAllowed,
    Task,
    TaskFields,
    TaskNotFound,
    VersionConflict,
    Viewer,
    apply_change,
    check_may_change,
    check_may_manage,
    check_may_see,
    invalid,
    new_task,
    safe_content_type,
    safe_filename,
    utc_now,
)
from taskmesh_tasks.listing import (
    NO_FILTER,
    ListQuery,
    Position,
    Scope,
    SortOrder,
    TaskFilter,
    check_filter,
    check_limit,
    decode_cursor,
    encode_cursor,
    sort_key_of,
)
from taskmesh_tasks.repository import AttachmentStore, TaskStore, TaskTransaction

log = structlog.get_logger(__name__)

T = TypeVar("T")

MAX_WRITE_ATTEMPTS: Final = 5
"""Recomputations of a write without an expected version that keeps losing races."""


@dataclass(frozen=True, slots=True)
class Written(Generic[T]):
    """What a write returns, and every user whose task list it may have changed."""

    value: T
    affected_user_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of a task list and the cursor of the next (None on the last page)."""

    tasks: list[Task]
    next_cursor: str | None


class TasksService:
    """The use cases over the task store, the attachment store and the user directory."""

    def __init__(
        self,
        store: TaskStore,
        attachments: AttachmentStore,
        users: UserDirectory,
        *,
        max_upload_bytes: int,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._attachments = attachments
        self._users = users
        self._max_upload_bytes = max_upload_bytes
        self._clock = clock

    # --- tasks ------------------------------------------------------------------------------

    async def create_task(self, viewer: Viewer, values: Mapping[str, Any]) -> Written[Task]:
        """Create a task owned by the viewer from checked field values (title required)."""
        fields = TaskFields(**values)
        if fields.assignee_id is not None:
            await self._check_assignee(fields.assignee_id)
        task = new_task(self._store.new_task_id(), viewer.user_id, fields, self._clock())

        async def create(tx: TaskTransaction) -> None:
            await tx.insert(task)
            tx.add_event(
                events.TASK_CREATED,
                subject=task.id,
                payload=events.task_created(task, viewer.user_id),
            )
            if task.assignee_id is not None:
                payload = events.task_assigned(task, None, viewer.user_id)
                tx.add_event(events.TASK_ASSIGNED, subject=task.id, payload=payload)
            if task.completed_at is not None:
                payload = events.task_completed(task, viewer.user_id)
                tx.add_event(events.TASK_COMPLETED, subject=task.id, payload=payload)

        await self._store.run_in_transaction(create)
        log.info("task.created", task_id=task.id, assignee_id=task.assignee_id)
        return Written(task, frozenset(task.involved_user_ids()))

    async def get_task(self, viewer: Viewer, task_id: str) -> Task:
        """The task, if the viewer may see it."""
        return check_may_see(await self._store.get(task_id), viewer)

    async def list_tasks(
        self,
        viewer: Viewer,
        *,
        scope: Scope = Scope.ALL,
        task_filter: TaskFilter = NO_FILTER,
        sort: SortOrder = SortOrder.CREATED_AT_DESC,
        limit: int = 0,
        cursor: str = "",
    ) -> TaskPage:
        """A page of the tasks the viewer sees, filtered and sorted, after `cursor`."""
        limit = check_limit(limit)
        task_filter = check_filter(task_filter)
        owner_id = task_filter.owner_id
        if owner_id is not None and owner_id != viewer.user_id and not viewer.is_admin:
            raise NotAllowed("only admins may list other users' tasks")
        after = decode_cursor(cursor, sort) if cursor else None
        query = ListQuery(viewer, scope, task_filter, sort, limit, after)
        tasks = await self._store.list_page(query)
        if len(tasks) <= limit:
            return TaskPage(tasks, None)
        last = tasks[limit - 1]
        next_cursor = encode_cursor(sort, Position(sort_key_of(last, sort), last.id))
        return TaskPage(tasks[:limit], next_cursor)

    async def update_task(
        self,
        viewer: Viewer,
        task_id: str,
        values: Mapping[str, Any],
        expected_version: int | None = None,
    ) -> Written[Task]:
        """Change the given fields (checked values); the assignee may change only `status`."""
        checked_assignee: str | None = None
        for _ in range(MAX_WRITE_ATTEMPTS):
            task = check_may_see(await self._store.get(task_id), viewer)
            if expected_version is not None and task.version != expected_version:
                raise VersionConflict()
            change = apply_change(task, values, self._clock())
            check_may_change(task, viewer, change.changed_fields)
            if not change.changed_fields:
                return Written(task, frozenset())
            assignee = change.after.assignee_id
            if change.assigned_someone and assignee is not None and assignee != checked_assignee:
                await self._check_assignee(assignee)
                checked_assignee = assignee

            async def save(tx: TaskTransaction, change: Change = change) -> Task | None:
                return await self._save(tx, change, viewer)

            stored = await self._store.run_in_transaction(save)
            if stored is not None:
                log.info(
                    "task.updated",
                    task_id=task_id,
                    version=stored.version,
                    changed_fields=list(change.changed_fields),
                )
                return Written(stored, frozenset(change.affected_user_ids()))
            if expected_version is not None:
                if await self._store.get(task_id) is None:
                    raise TaskNotFound()
                log.info("task.version_conflict", task_id=task_id, expected=expected_version)
                raise VersionConflict()
            log.info("task.write_retried", task_id=task_id)
        raise Conflict("the task is changing too often; try again")

    async def replace_task(
        self,
        viewer: Viewer,
        task_id: str,
        values: Mapping[str, Any],
        expected_version: int | None = None,
    ) -> Written[Task]:
        """Set every writable field (those not given take their defaults)."""
        defaults = TaskFields(title="")
        full = {name: values.get(name, getattr(defaults, name)) for name in WRITABLE_FIELDS}
        return await self.update_task(viewer, task_id, full, expected_version)

    async def delete_task(self, viewer: Viewer, task_id: str) -> Written[None]:
        """Delete a task (owner or admin), then its attachments."""
        for _ in range(MAX_WRITE_ATTEMPTS):
            task = check_may_see(await self._store.get(task_id), viewer)
            check_may_manage(task, viewer)

            async def delete(tx: TaskTransaction, task: Task = task) -> bool:
                if not await tx.delete(task):
                    return False
                payload = events.task_deleted(task, viewer.user_id)
                tx.add_event(events.TASK_DELETED, subject=task.id, payload=payload)
                return True

            if await self._store.run_in_transaction(delete):
                removed = await self._attachments.delete_all(task.id)
                log.info("task.deleted", task_id=task.id, attachments_deleted=removed)
                return Written(None, frozenset(task.involved_user_ids()))
        raise Conflict("the task is changing too often; try again")

    async def _save(self, tx: TaskTransaction, change: Change, viewer: Viewer) -> Task | None:
        stored = await tx.save(change)
        if stored is None:
            return None
        task_id, actor_id = stored.id, viewer.user_id
        tx.add_event(
            events.TASK_UPDATED, subject=task_id, payload=events.task_updated(change, actor_id)
        )
        if change.assigned_someone:
            payload = events.task_assigned(stored, change.before.assignee_id, actor_id)
            tx.add_event(events.TASK_ASSIGNED, subject=task_id, payload=payload)
        if change.completed:
            payload = events.task_completed(stored, actor_id)
            tx.add_event(events.TASK_COMPLETED, subject=task_id, payload=payload)
        return stored

    async def _check_assignee(self, user_id: str) -> None:
        state = await self._users.state_of(user_id)
        if state is not UserState.ACTIVE:
            log.info("task.assignee_refused", assignee_id=user_id, state=state.value)
            raise invalid(("body", "assignee_id"), "must be the id of an existing active user")

    # --- attachments ------------------------------------------------------------------------

    async def upload_attachment(
        self,
        viewer: Viewer,
        task_id: str,
        filename: str,
        content_type: str,
        chunks: AsyncIterator[bytes],
    ) -> Written[Attachment]:
        """Store a file on a task (owner or admin), hashing it as it streams; size-limited.

        Too large: AttachmentTooLarge, and whatever was written is discarded.
        """
        task = check_may_see(await self._store.get(task_id), viewer)
        check_may_manage(task, viewer)
        upload = await self._attachments.begin(
            task.id, safe_filename(filename), safe_content_type(content_type)
        )
        digest = hashlib.sha256()
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > self._max_upload_bytes:
                    raise AttachmentTooLarge(f"the file exceeds {self._max_upload_bytes} bytes")
                digest.update(chunk)
                await upload.write(chunk)
        except BaseException:
            await upload.abort()
            log.info("attachment.upload_aborted", task_id=task.id, received_bytes=size)
            raise
        attachment = await upload.finish(size, digest.hexdigest())
        if await self._store.get(task.id) is None:
            # Deleted while the file streamed in: its attachments must go with it.
            await self._attachments.delete(attachment)
            raise TaskNotFound()
        log.info("attachment.stored", task_id=task.id, attachment_id=attachment.id, size=size)
        return Written(attachment, frozenset(task.involved_user_ids()))

    async def list_attachments(self, viewer: Viewer, task_id: str) -> list[Attachment]:
        """The attachments of a task the viewer sees, oldest first."""
        task = check_may_see(await self._store.get(task_id), viewer)
        return await self._attachments.list_for(task.id)

    async def download_attachment(
        self, viewer: Viewer, task_id: str, attachment_id: str
    ) -> tuple[Attachment, AsyncIterator[bytes]]:
        """An attachment of a task the viewer sees, and its bytes as a stream of chunks."""
        task = check_may_see(await self._store.get(task_id), viewer)
        attachment = await self._attachments.get(task.id, attachment_id)
        if attachment is None:
            raise AttachmentNotFound()
        return attachment, self._attachments.read(attachment)

    async def delete_attachment(
        self, viewer: Viewer, task_id: str, attachment_id: str
    ) -> Written[None]:
        """Delete an attachment (owner or admin)."""
        task = check_may_see(await self._store.get(task_id), viewer)
        check_may_manage(task, viewer)
        attachment = await self._attachments.get(task.id, attachment_id)
        if attachment is None:
            raise AttachmentNotFound()
        await self._attachments.delete(attachment)
        log.info("attachment.deleted", task_id=task.id, attachment_id=attachment.id)
        return Written(None, frozenset(task.involved_user_ids()))
