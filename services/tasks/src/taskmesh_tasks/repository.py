"""MongoDB access of the tasks service: tasks, their attachments (GridFS), the outbox, and
the purge jobs of deleted accounts.

Lists are served by one index per (owner or assignee, sort key): each page reads, per
branch of the caller's scope, the tasks with the branch's id in index order from the
cursor on, and the branches are merged here. Queries use only equality and range conditions
joined by AND, never `$or`: SecantusDB answers any `$or` with a collection scan (as it does
`hint()` and `find_one_and_update`), and real MongoDB serves these as well. See docs/tasks.md.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar

import pymongo
from bson import ObjectId
from google.protobuf.message import Message
from gridfs.asynchronous import AsyncGridFSBucket
from gridfs.asynchronous.grid_file import AsyncGridIn
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from taskmesh_chassis.events import Outbox, UnitOfWork
from taskmesh_chassis.mongo import Document, IndexPlan

from taskmesh_tasks.domain import (
    Attachment,
    Change,
    Priority,
    PurgeJob,
    Status,
    Task,
    TaskFields,
    is_object_id,
)
from taskmesh_tasks.listing import (
    NO_DUE_DATE,
    ListQuery,
    Position,
    Scope,
    SortOrder,
    sort_key_of,
)

TASKS: Final = "tasks"
USER_PURGES: Final = "user_purges"
ATTACHMENT_BUCKET: Final = "attachments"
ATTACHMENT_FILES: Final = f"{ATTACHMENT_BUCKET}.files"
ATTACHMENT_CHUNK_BYTES: Final = 255 * 1024
BRANCH_FIELDS: Final = ("owner_id", "assignee_id")
SORT_KEYS: Final = {"created_at": DESCENDING, "due_key": ASCENDING, "priority": DESCENDING}
SORT_KEYS_ALL: Final = {**SORT_KEYS, "updated_at": DESCENDING}

BATCH_READ_TIMEOUT_S: Final = 60.0
"""A batch of a user's tasks: the first one may read all of their index entries (SecantusDB)."""
NEVER_CLAIMED: Final = datetime(1970, 1, 1, tzinfo=UTC)

T = TypeVar("T")


def list_index_name(branch_field: str, key: str) -> str:
    """Name of the index serving lists of one branch (owner/assignee) sorted by `key`."""
    return f"{branch_field}_{key}_id"


INDEXES: IndexPlan = {
    # Every sort of the owned and of the assigned lists: equality on the user, then the sort
    # key, then _id for the tie-break and keyset cursor. One index serves both directions.
    TASKS: [
        IndexModel(
            [(branch, ASCENDING), (key, direction), ("_id", direction)],
            name=list_index_name(branch, key),
        )
        for branch in BRANCH_FIELDS
        for key, direction in SORT_KEYS_ALL.items()
    ],
    # A task's attachments, oldest first.
    ATTACHMENT_FILES: [
        IndexModel(
            [("metadata.task_id", ASCENDING), ("uploadDate", ASCENDING), ("_id", ASCENDING)],
            name="task_id_upload_date",
        )
    ],
    # The purge jobs no instance holds a lease on (also creates the collection, which a
    # transaction could not do on SecantusDB).
    USER_PURGES: [IndexModel([("claimed_until", ASCENDING)], name="claimed_until")],
}


# --- documents ---------------------------------------------------------------------------


def search_text(fields: TaskFields) -> str:
    """What `q` searches: title and description, lower-cased (so no case-insensitive regex)."""
    return f"{fields.title}\n{fields.description}".lower()


def task_document(task: Task) -> Document:
    """The stored form of a task."""
    fields = task.fields
    return {
        "_id": ObjectId(task.id),
        "owner_id": task.owner_id,
        "assignee_id": fields.assignee_id,
        "title": fields.title,
        "description": fields.description,
        "search": search_text(fields),
        "status": fields.status.value,
        "priority": int(fields.priority),
        "due_at": fields.due_at,
        "due_key": fields.due_at or NO_DUE_DATE,
        "tags": list(fields.tags),
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "completed_at": task.completed_at,
        "version": task.version,
    }


def task_from(document: Document) -> Task:
    """A task from its stored form."""
    return Task(
        id=str(document["_id"]),
        owner_id=document["owner_id"],
        fields=TaskFields(
            title=document["title"],
            description=document["description"],
            status=Status(document["status"]),
            priority=Priority(document["priority"]),
            due_at=document["due_at"],
            tags=tuple(document["tags"]),
            assignee_id=document["assignee_id"],
        ),
        created_at=document["created_at"],
        updated_at=document["updated_at"],
        completed_at=document["completed_at"],
        version=document["version"],
    )


# --- list queries ------------------------------------------------------------------------


def scope_branches(query: ListQuery) -> list[Document]:
    """The equality conditions of each branch of the list, each served by one index.

    A user's list is the union of the tasks they own and those assigned to them (as the
    scope says); the `owner_id`/`assignee_id` filters narrow each branch (a branch they
    contradict is dropped). An admin who names an owner or assignee lists anyone's tasks.
    """
    viewer, task_filter = query.viewer, query.filter
    named = {
        name: value
        for name, value in (
            ("owner_id", task_filter.owner_id),
            ("assignee_id", task_filter.assignee_id),
        )
        if value is not None
    }
    if viewer.is_admin and named:
        return [named]
    bases: list[Document] = []
    if query.scope in (Scope.ALL, Scope.OWNED):
        bases.append({"owner_id": viewer.user_id})
    if query.scope in (Scope.ALL, Scope.ASSIGNED):
        bases.append({"assignee_id": viewer.user_id})
    branches = []
    for base in bases:
        if all(base.get(name, value) == value for name, value in named.items()):
            branches.append({**base, **named})
    return branches


def filter_conditions(query: ListQuery) -> Document:
    """The conditions every branch shares; client values appear only as operands."""
    task_filter = query.filter
    conditions: Document = {}
    if task_filter.status is not None:
        conditions["status"] = {"$eq": task_filter.status.value}
    if task_filter.priority is not None:
        conditions["priority"] = {"$eq": int(task_filter.priority)}
    if task_filter.tags:
        conditions["tags"] = {"$all": list(task_filter.tags)}
    if task_filter.text:
        conditions["search"] = {"$regex": re.escape(task_filter.text)}
    due: Document = {}
    if task_filter.due_before is not None:
        due["$lt"] = task_filter.due_before
    if task_filter.due_after is not None:
        due["$gt"] = task_filter.due_after
    if due:
        conditions["due_at"] = due
    return conditions


def with_condition(conditions: Document, field: str, condition: Document) -> Document:
    """`conditions` plus operator `condition` on `field`, merged with any already there."""
    merged = dict(conditions)
    existing = merged.get(field)
    if isinstance(existing, dict):
        merged[field] = {**existing, **condition}
    elif existing is not None:
        merged[field] = {"$eq": existing, **condition}
    else:
        merged[field] = condition
    return merged


def page_queries(
    branch: Document, shared: Document, sort: SortOrder, after: Position | None
) -> list[Document]:
    """The filters that, read in order, continue the branch after `after`.

    A keyset `(key, _id) > (k, id)` is the AND-only pair "key = k and _id beyond id", then
    "key beyond k"; each one is a contiguous range of the branch's index.
    """
    base = {**branch, **shared}
    if after is None:
        return [base]
    beyond = "$lt" if sort.descending else "$gt"
    key: Any = after.key
    same_key = with_condition(
        with_condition(base, sort.key, {"$eq": key}), "_id", {beyond: ObjectId(after.task_id)}
    )
    later_key = with_condition(base, sort.key, {beyond: key})
    return [same_key, later_key]


def merge_branches(pages: list[list[Task]], sort: SortOrder, limit: int) -> list[Task]:
    """The first `limit` distinct tasks of sorted branch pages, in the list's order."""
    descending = sort.descending

    def ordered(page: list[Task]) -> Iterator[tuple[Any, ...]]:
        for task in page:
            key = (sort_key_of(task, sort), ObjectId(task.id))
            yield (_Reverse(key) if descending else key, task.id, task)

    merged: list[Task] = []
    seen: set[str] = set()
    for _, task_id, task in heapq.merge(*(ordered(page) for page in pages)):
        if task_id in seen:
            continue
        seen.add(task_id)
        merged.append(task)
        if len(merged) == limit:
            break
    return merged


class _Reverse:
    """Wraps a comparable so that heapq.merge orders it descending."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Reverse) -> bool:
        result: bool = self.value > other.value
        return result

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reverse) and bool(self.value == other.value)

    def __hash__(self) -> int:
        return hash(self.value)


# --- the stores --------------------------------------------------------------------------


class TaskTransaction(Protocol):
    """Writes to tasks that commit together with the events they publish."""

    async def insert(self, task: Task) -> None:
        """Store a new task."""
        ...

    async def save(self, change: Change) -> Task | None:
        """Store `change.after` if the task is still at `change.before`'s version and assignee.

        Returns the stored task as re-read, or None when the version moved on (or it is gone).
        """
        ...

    async def delete(self, task: Task) -> bool:
        """Delete the task if it still has `task`'s owner and version; False otherwise."""
        ...

    def add_event(self, event_type: str, *, subject: str, payload: Message) -> None:
        """Publish this event if, and only if, the transaction commits."""
        ...


class TaskStore(Protocol):
    """The tasks: reads, lists, and transactions that write them."""

    def new_task_id(self) -> str:
        """A fresh task id."""
        ...

    async def get(self, task_id: str) -> Task | None:
        """The task with this id (any 24-hex string; None for anything else), if any."""
        ...

    async def list_page(self, query: ListQuery) -> list[Task]:
        """Up to `query.limit + 1` tasks of the list after `query.after`, in its order."""
        ...

    def owned_batches(self, user_id: str, size: int) -> AsyncGenerator[list[Task], None]:
        """Every task the user owns, `size` at a time, in no particular order."""
        ...

    def assigned_batches(self, user_id: str, size: int) -> AsyncGenerator[list[Task], None]:
        """Every task assigned to the user, `size` at a time, in no particular order."""
        ...

    async def run_in_transaction(self, work: Callable[[TaskTransaction], Awaitable[T]]) -> T:
        """Run `work` in one transaction (again from the start on a transient conflict)."""
        ...


class AttachmentUpload(Protocol):
    """A file being written; invisible until `finish`."""

    async def write(self, chunk: bytes) -> None:
        """Append bytes."""
        ...

    async def abort(self) -> None:
        """Discard everything written."""
        ...

    async def finish(self, size: int, sha256: str) -> Attachment:
        """Make the file visible on its task with its size and digest; return it."""
        ...


class AttachmentStore(Protocol):
    """The files stored on tasks."""

    async def begin(self, task_id: str, filename: str, content_type: str) -> AttachmentUpload:
        """Start writing a file on a task."""
        ...

    async def list_for(self, task_id: str) -> list[Attachment]:
        """The task's attachments, oldest first."""
        ...

    async def get(self, task_id: str, attachment_id: str) -> Attachment | None:
        """The attachment if it is on this task."""
        ...

    def read(self, attachment: Attachment) -> AsyncIterator[bytes]:
        """The attachment's bytes, chunk by chunk."""
        ...

    async def delete(self, attachment: Attachment) -> None:
        """Delete the attachment and its bytes."""
        ...

    async def delete_all(self, task_id: str) -> int:
        """Delete every attachment of the task; return how many there were."""
        ...


class PurgeJobStore(Protocol):
    """The purge jobs of deleted accounts; a lease lets one instance at a time work on each."""

    async def record(self, job: PurgeJob, session: AsyncClientSession) -> None:
        """Record the job in the caller's transaction, unless it is recorded already."""
        ...

    async def claimable(self, now: datetime, limit: int) -> list[PurgeJob]:
        """Up to `limit` jobs nobody holds a lease on at `now`."""
        ...

    async def claim(self, user_id: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take the job's lease until `until` if nobody holds it at `now`; tell if taken."""
        ...

    async def renew(self, user_id: str, holder: str, until: datetime) -> bool:
        """Extend the holder's lease to `until`; False when the lease is no longer theirs."""
        ...

    async def release(self, user_id: str, holder: str, claimable_at: datetime) -> None:
        """Give up the holder's lease; the job may be claimed again from `claimable_at`."""
        ...

    async def finish(self, user_id: str, holder: str) -> None:
        """Remove the holder's job: everything is done."""
        ...


class _MongoTaskTransaction:
    def __init__(self, tasks: AsyncCollection[Document], uow: UnitOfWork) -> None:
        self._tasks = tasks
        self._uow = uow
        self._session: AsyncClientSession = uow.session

    async def insert(self, task: Task) -> None:
        await self._tasks.insert_one(task_document(task), session=self._session)

    async def save(self, change: Change) -> Task | None:
        # update_one + find_one by _id, not find_one_and_update: on SecantusDB the latter
        # scans the whole collection. Read in the transaction, this is exactly our write.
        task_id = ObjectId(change.before.id)
        document = task_document(change.after)
        del document["_id"]
        result = await self._tasks.update_one(
            {
                "_id": task_id,
                "version": change.before.version,
                "assignee_id": change.before.assignee_id,
            },
            {"$set": document},
            session=self._session,
        )
        if result.matched_count != 1:
            return None
        stored = await self._tasks.find_one({"_id": task_id}, session=self._session)
        return None if stored is None else task_from(stored)

    async def delete(self, task: Task) -> bool:
        result = await self._tasks.delete_one(
            {"_id": ObjectId(task.id), "owner_id": task.owner_id, "version": task.version},
            session=self._session,
        )
        return result.deleted_count == 1

    def add_event(self, event_type: str, *, subject: str, payload: Message) -> None:
        self._uow.add_event(event_type, subject=subject, payload=payload)


class MongoTaskStore:
    """Tasks in MongoDB; writes go through the outbox's transactions."""

    def __init__(self, database: AsyncDatabase[Document], outbox: Outbox) -> None:
        self._tasks: AsyncCollection[Document] = database[TASKS]
        self._outbox = outbox

    def new_task_id(self) -> str:
        """A fresh task id."""
        return str(ObjectId())

    async def get(self, task_id: str) -> Task | None:
        """The task with this id, if any."""
        if not is_object_id(task_id):
            return None
        document = await self._tasks.find_one({"_id": ObjectId(task_id)})
        return None if document is None else task_from(document)

    async def list_page(self, query: ListQuery) -> list[Task]:
        """Up to `limit + 1` tasks after the cursor: each branch read in index order, merged."""
        shared = filter_conditions(query)
        wanted = query.limit + 1
        pages = []
        for branch in scope_branches(query):
            page: list[Task] = []
            for conditions in page_queries(branch, shared, query.sort, query.after):
                page.extend(await self._read(conditions, query.sort, wanted - len(page)))
                if len(page) >= wanted:
                    break
            pages.append(page)
        return merge_branches(pages, query.sort, wanted)

    async def explain_page(self, query: ListQuery) -> list[Document]:
        """The server's explain() of each query a first page runs (for tests and the bench)."""
        shared = filter_conditions(query)
        plans = []
        for branch in scope_branches(query):
            for conditions in page_queries(branch, shared, query.sort, query.after):
                cursor = self._tasks.find(conditions).sort(self._sort(query.sort))
                plans.append(await cursor.limit(query.limit + 1).explain())
        return plans

    def owned_batches(self, user_id: str, size: int) -> AsyncGenerator[list[Task], None]:
        """Every task the user owns, `size` at a time (served by an `owner_id` index)."""
        return self._batches({"owner_id": {"$eq": user_id}}, size)

    def assigned_batches(self, user_id: str, size: int) -> AsyncGenerator[list[Task], None]:
        """Every task assigned to the user, `size` at a time (an `assignee_id` index)."""
        return self._batches({"assignee_id": {"$eq": user_id}}, size)

    async def explain_batches(self, user_id: str, size: int) -> list[Document]:
        """The server's explain() of the owned and the assigned batch reads (for tests)."""
        return [
            await self._tasks.find({branch: {"$eq": user_id}}).batch_size(size).explain()
            for branch in BRANCH_FIELDS
        ]

    async def _batches(self, conditions: Document, size: int) -> AsyncGenerator[list[Task], None]:
        # One cursor for all of them: re-querying per batch would cost every remaining entry
        # each time on SecantusDB, whose index scans do not stop at a limit.
        cursor = self._tasks.find(conditions).batch_size(size)
        async with cursor:
            while True:
                with pymongo.timeout(BATCH_READ_TIMEOUT_S):
                    documents = await cursor.to_list(size)
                if not documents:
                    return
                yield [task_from(document) for document in documents]

    async def _read(self, conditions: Document, sort: SortOrder, limit: int) -> list[Task]:
        cursor = self._tasks.find(conditions).sort(self._sort(sort)).limit(limit)
        return [task_from(document) async for document in cursor]

    @staticmethod
    def _sort(sort: SortOrder) -> list[tuple[str, int]]:
        direction = DESCENDING if sort.descending else ASCENDING
        return [(sort.key, direction), ("_id", direction)]

    async def run_in_transaction(self, work: Callable[[TaskTransaction], Awaitable[T]]) -> T:
        """Run `work` in one outbox transaction, retried from the start on transient errors."""

        async def attempt(uow: UnitOfWork) -> T:
            return await work(_MongoTaskTransaction(self._tasks, uow))

        return await self._outbox.run_in_transaction(attempt)


class MongoPurgeJobs:
    """Purge jobs in MongoDB, with their leases.

    A job is `{_id: user id, actor_id, requested_at, claimed_until, claimed_by}`; leases are
    taken with a conditional `update_one` (never `find_one_and_update`, a collection scan on
    SecantusDB).
    """

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._jobs: AsyncCollection[Document] = database[USER_PURGES]

    async def record(self, job: PurgeJob, session: AsyncClientSession) -> None:
        """Upsert the job in the caller's transaction; a job already recorded is kept as is."""
        await self._jobs.update_one(
            {"_id": job.user_id},
            {
                "$setOnInsert": {
                    "actor_id": job.actor_id,
                    "requested_at": job.requested_at,
                    "claimed_until": NEVER_CLAIMED,
                    "claimed_by": None,
                }
            },
            upsert=True,
            session=session,
        )

    async def claimable(self, now: datetime, limit: int) -> list[PurgeJob]:
        """Up to `limit` jobs whose lease ran out before `now` (the `claimed_until` index)."""
        cursor = self._jobs.find({"claimed_until": {"$lt": now}}).limit(limit)
        return [
            PurgeJob(
                user_id=document["_id"],
                actor_id=document["actor_id"],
                requested_at=document["requested_at"],
            )
            async for document in cursor
        ]

    async def explain_claimable(self, now: datetime, limit: int) -> Document:
        """The server's explain() of the `claimable` query (for tests)."""
        plan: Document = (
            await self._jobs.find({"claimed_until": {"$lt": now}}).limit(limit).explain()
        )
        return plan

    async def claim(self, user_id: str, holder: str, now: datetime, until: datetime) -> bool:
        """Take the lease if it ran out: exactly one of several claimers modifies the job."""
        result = await self._jobs.update_one(
            {"_id": user_id, "claimed_until": {"$lt": now}},
            {"$set": {"claimed_until": until, "claimed_by": holder}},
        )
        return result.modified_count == 1

    async def renew(self, user_id: str, holder: str, until: datetime) -> bool:
        """Extend the lease if `holder` still has it."""
        result = await self._jobs.update_one(
            {"_id": user_id, "claimed_by": holder}, {"$set": {"claimed_until": until}}
        )
        return result.matched_count == 1

    async def release(self, user_id: str, holder: str, claimable_at: datetime) -> None:
        """Let the job be claimed again from `claimable_at`, if `holder` still has it."""
        await self._jobs.update_one(
            {"_id": user_id, "claimed_by": holder},
            {"$set": {"claimed_until": claimable_at, "claimed_by": None}},
        )

    async def finish(self, user_id: str, holder: str) -> None:
        """Delete the job, if `holder` still has it (else its new holder finishes it)."""
        await self._jobs.delete_one({"_id": user_id, "claimed_by": holder})


def attachment_from(document: Document) -> Attachment:
    """An attachment from its GridFS files document."""
    metadata = document["metadata"]
    return Attachment(
        id=str(document["_id"]),
        task_id=str(metadata["task_id"]),
        filename=document["filename"],
        content_type=metadata["content_type"],
        size=int(document["length"]),
        sha256=metadata["sha256"],
        created_at=document["uploadDate"],
    )


class _GridFsUpload:
    def __init__(
        self,
        files: AsyncCollection[Document],
        grid_in: AsyncGridIn,
        task_id: str,
        content_type: str,
    ) -> None:
        self._files = files
        self._grid_in = grid_in
        self._task_id = task_id
        self._content_type = content_type

    async def write(self, chunk: bytes) -> None:
        await self._grid_in.write(chunk)

    async def abort(self) -> None:
        await self._grid_in.abort()

    async def finish(self, size: int, sha256: str) -> Attachment:
        # The files document is written on close, with this metadata: until then the file
        # is invisible to every list and download.
        await self._grid_in.set(
            "metadata",
            {
                "task_id": ObjectId(self._task_id),
                "content_type": self._content_type,
                "sha256": sha256,
            },
        )
        await self._grid_in.close()
        document = await self._files.find_one({"_id": self._grid_in._id})
        if document is None:
            raise RuntimeError("the attachment vanished as it was stored")
        return attachment_from(document)


class GridFsAttachmentStore:
    """Attachments as GridFS files in the tasks database, the task id in their metadata."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._bucket = AsyncGridFSBucket(
            database, bucket_name=ATTACHMENT_BUCKET, chunk_size_bytes=ATTACHMENT_CHUNK_BYTES
        )
        self._files: AsyncCollection[Document] = database[ATTACHMENT_FILES]

    async def begin(self, task_id: str, filename: str, content_type: str) -> AttachmentUpload:
        """Start writing a file on a task."""
        grid_in = self._bucket.open_upload_stream(filename)
        return _GridFsUpload(self._files, grid_in, task_id, content_type)

    async def list_for(self, task_id: str) -> list[Attachment]:
        """The task's attachments, oldest first."""
        cursor = self._files.find({"metadata.task_id": ObjectId(task_id)}).sort(
            [("uploadDate", ASCENDING), ("_id", ASCENDING)]
        )
        return [attachment_from(document) async for document in cursor]

    async def get(self, task_id: str, attachment_id: str) -> Attachment | None:
        """The attachment if it is on this task."""
        if not is_object_id(attachment_id):
            return None
        document = await self._files.find_one(
            {"_id": ObjectId(attachment_id), "metadata.task_id": ObjectId(task_id)}
        )
        return None if document is None else attachment_from(document)

    async def read(self, attachment: Attachment) -> AsyncIterator[bytes]:
        """The attachment's bytes, one GridFS chunk at a time."""
        grid_out = await self._bucket.open_download_stream(ObjectId(attachment.id))
        try:
            while chunk := await grid_out.readchunk():
                yield chunk
        finally:
            await grid_out.close()

    async def delete(self, attachment: Attachment) -> None:
        """Delete the attachment and its chunks."""
        with pymongo.timeout(30):
            await self._bucket.delete(ObjectId(attachment.id))

    async def delete_all(self, task_id: str) -> int:
        """Delete every attachment of the task."""
        attachments = await self.list_for(task_id)
        for attachment in attachments:
            await self.delete(attachment)
        return len(attachments)
