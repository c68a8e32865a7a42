"""Small in-memory stand-ins for the tasks service's adapters, for the use-case tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bson import ObjectId
from google.protobuf.message import Message
from taskmesh_tasks.directory import UserState
from taskmesh_tasks.domain import (
    AssigneeCheckUnavailable,
    Attachment,
    Change,
    PurgeJob,
    Task,
    Viewer,
)
from taskmesh_tasks.listing import ListQuery, sort_key_of
from taskmesh_tasks.repository import scope_branches
from taskmesh_tasks.service import TasksService

T = TypeVar("T")

OWNER = Viewer("65f0c0ffee00000000000001")
ASSIGNEE = Viewer("65f0c0ffee00000000000002")
STRANGER = Viewer("65f0c0ffee00000000000003")
ADMIN = Viewer("65f0c0ffee00000000000009", is_admin=True)
INACTIVE_USER = "65f0c0ffee00000000000004"


class FakeClock:
    """A clock that moves one millisecond on every reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclass
class RecordedEvent:
    type: str
    subject: str
    payload: Any


@dataclass
class FakeTaskStore:
    """Tasks in a dict; a transaction applies its writes and events only when it returns."""

    tasks: dict[str, Task] = field(default_factory=dict)
    events: list[RecordedEvent] = field(default_factory=list)
    before_save: Callable[[], None] | None = None

    def new_task_id(self) -> str:
        return str(ObjectId())

    async def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    async def list_page(self, query: ListQuery) -> list[Task]:
        branches = scope_branches(query)
        task_filter = query.filter

        def matches(task: Task) -> bool:
            stored = {"owner_id": task.owner_id, "assignee_id": task.assignee_id}
            in_scope = any(
                all(stored[name] == value for name, value in branch.items()) for branch in branches
            )
            fields = task.fields
            text = f"{fields.title}\n{fields.description}".lower()
            return (
                in_scope
                and task_filter.status in (None, fields.status)
                and task_filter.priority in (None, fields.priority)
                and set(task_filter.tags) <= set(fields.tags)
                and task_filter.text in text
            )

        def order(task: Task) -> tuple[Any, ObjectId]:
            return (sort_key_of(task, query.sort), ObjectId(task.id))

        found = sorted(
            filter(matches, self.tasks.values()), key=order, reverse=query.sort.descending
        )
        if query.after is not None:
            position = (query.after.key, ObjectId(query.after.task_id))
            found = [
                task
                for task in found
                if (order(task) < position if query.sort.descending else order(task) > position)
            ]
        return found[: query.limit + 1]

    async def owned_batches(self, user_id: str, size: int) -> AsyncIterator[list[Task]]:
        for batch in self._batches([t for t in self.tasks.values() if t.owner_id == user_id], size):
            yield batch

    async def assigned_batches(self, user_id: str, size: int) -> AsyncIterator[list[Task]]:
        assigned = [t for t in self.tasks.values() if t.assignee_id == user_id]
        for batch in self._batches(assigned, size):
            yield batch

    @staticmethod
    def _batches(tasks: list[Task], size: int) -> list[list[Task]]:
        return [tasks[start : start + size] for start in range(0, len(tasks), size)]

    async def run_in_transaction(self, work: Callable[[Any], Awaitable[T]]) -> T:
        tx = FakeTransaction(self)
        result = await work(tx)
        self.tasks.update(tx.written)
        for task_id in tx.deleted:
            del self.tasks[task_id]
        self.events.extend(tx.events)
        return result

    def events_of(self, event_type: str) -> list[Any]:
        return [event.payload for event in self.events if event.type == event_type]


class FakeTransaction:
    def __init__(self, store: FakeTaskStore) -> None:
        self._store = store
        self.written: dict[str, Task] = {}
        self.deleted: list[str] = []
        self.events: list[RecordedEvent] = []

    async def insert(self, task: Task) -> None:
        self.written[task.id] = task

    async def save(self, change: Change) -> Task | None:
        if self._store.before_save is not None:
            self._store.before_save()
        current = self._store.tasks.get(change.before.id)
        if current is None or current.version != change.before.version:
            return None
        self.written[change.after.id] = change.after
        return change.after

    async def delete(self, task: Task) -> bool:
        current = self._store.tasks.get(task.id)
        if current is None or current.version != task.version:
            return False
        self.deleted.append(task.id)
        return True

    def add_event(self, event_type: str, *, subject: str, payload: Message) -> None:
        self.events.append(RecordedEvent(event_type, subject, payload))


@dataclass
class FakeUpload:
    store: FakeAttachmentStore
    task_id: str
    filename: str
    content_type: str
    chunks: list[bytes] = field(default_factory=list)
    aborted: bool = False

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def abort(self) -> None:
        self.aborted = True
        self.chunks.clear()

    async def finish(self, size: int, sha256: str) -> Attachment:
        attachment = Attachment(
            id=str(ObjectId()),
            task_id=self.task_id,
            filename=self.filename,
            content_type=self.content_type,
            size=size,
            sha256=sha256,
            created_at=datetime.now(UTC),
        )
        self.store.files[attachment.id] = (attachment, b"".join(self.chunks))
        return attachment


@dataclass
class FakeAttachmentStore:
    files: dict[str, tuple[Attachment, bytes]] = field(default_factory=dict)
    uploads: list[FakeUpload] = field(default_factory=list)

    async def begin(self, task_id: str, filename: str, content_type: str) -> FakeUpload:
        upload = FakeUpload(self, task_id, filename, content_type)
        self.uploads.append(upload)
        return upload

    async def list_for(self, task_id: str) -> list[Attachment]:
        return [a for a, _ in self.files.values() if a.task_id == task_id]

    async def get(self, task_id: str, attachment_id: str) -> Attachment | None:
        found = self.files.get(attachment_id)
        return found[0] if found is not None and found[0].task_id == task_id else None

    async def read(self, attachment: Attachment) -> AsyncIterator[bytes]:
        content = self.files[attachment.id][1]
        for start in range(0, len(content), 4):
            yield content[start : start + 4]

    async def delete(self, attachment: Attachment) -> None:
        self.files.pop(attachment.id, None)

    async def delete_all(self, task_id: str) -> int:
        doomed = [a for a, _ in self.files.values() if a.task_id == task_id]
        for attachment in doomed:
            await self.delete(attachment)
        return len(doomed)


@dataclass
class FakeUserDirectory:
    """Every user is active, but INACTIVE_USER; `down` makes every lookup fail."""

    down: bool = False
    asked: list[str] = field(default_factory=list)

    async def state_of(self, user_id: str) -> UserState:
        self.asked.append(user_id)
        if self.down:
            raise AssigneeCheckUnavailable()
        if user_id == INACTIVE_USER:
            return UserState.INACTIVE
        if user_id.startswith("65f0c0ffee"):
            return UserState.ACTIVE
        return UserState.UNKNOWN


@dataclass
class Harness:
    service: TasksService
    store: FakeTaskStore
    attachments: FakeAttachmentStore
    users: FakeUserDirectory
    clock: FakeClock


def make_harness(*, max_upload_bytes: int = 64) -> Harness:
    store, attachments, users, clock = (
        FakeTaskStore(),
        FakeAttachmentStore(),
        FakeUserDirectory(),
        FakeClock(),
    )
    service = TasksService(
        store, attachments, users, max_upload_bytes=max_upload_bytes, clock=clock
    )
    return Harness(service, store, attachments, users, clock)


async def byte_stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@dataclass
class FakePurgeJobs:
    """Purge jobs in a dict, with the leases' rules of the MongoDB store."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def record(self, job: PurgeJob, session: Any) -> None:
        never = datetime.min.replace(tzinfo=UTC)
        self.jobs.setdefault(job.user_id, {"job": job, "claimed_until": never, "claimed_by": None})

    async def claimable(self, now: datetime, limit: int) -> list[PurgeJob]:
        found = [entry["job"] for entry in self.jobs.values() if entry["claimed_until"] < now]
        return found[:limit]

    async def claim(self, user_id: str, holder: str, now: datetime, until: datetime) -> bool:
        entry = self.jobs.get(user_id)
        if entry is None or entry["claimed_until"] >= now:
            return False
        entry.update(claimed_until=until, claimed_by=holder)
        return True

    async def renew(self, user_id: str, holder: str, until: datetime) -> bool:
        entry = self.jobs.get(user_id)
        if entry is None or entry["claimed_by"] != holder:
            return False
        entry["claimed_until"] = until
        return True

    async def release(self, user_id: str, holder: str, claimable_at: datetime) -> None:
        entry = self.jobs.get(user_id)
        if entry is not None and entry["claimed_by"] == holder:
            entry.update(claimed_until=claimable_at, claimed_by=None)

    async def finish(self, user_id: str, holder: str) -> None:
        if self.jobs.get(user_id, {}).get("claimed_by") == holder:
            del self.jobs[user_id]


@dataclass
class RecordingLists:
    """A task-list invalidator that remembers whom it invalidated."""

    invalidated: list[set[str]] = field(default_factory=list)

    async def invalidate(self, user_ids: Collection[str]) -> bool:
        self.invalidated.append(set(user_ids))
        return True
