"""MongoDB access of the notifications service: notifications, read copies, reminders.

    notifications  {_id: ObjectId, user_id, type, title, body, task_id | null, read,
                    created_at}: the in-app notifications of each user
    recipients     {_id: user id, email, name, timezone, email_notifications, profile_at}:
                    the read copy of each user's profile (from user.* events)
    deleted_users  {_id: user id, deleted_at}: tombstones, so that no late or replayed event
                    brings a deleted user's copy back; an id and a time, no personal data
    due_tasks      {_id: task id, owner_id, assignee_id | null, title, due_at | null, done,
                    version, pending_due_at?, deleted_at?}: the read copy of each task
                    (from task.* events); `pending_due_at` exists while a reminder for the
                    due date may still be due, `deleted_at` marks a deleted task's tombstone
    reminders      {_id: "<task id>:<due_at RFC 3339>", task_id, due_at, reminded_at}: the
                    due dates reminded of, one document per task and due date

Queries use equality and range conditions joined by AND, never `$or` (SecantusDB scans for
any `$or`), and no `find_one_and_update` (it scans too): see docs/notifications.md.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid
from taskmesh_chassis.mongo import Document, IndexPlan

from taskmesh_notifications.domain import (
    NewNotification,
    Notification,
    Recipient,
    TaskCopy,
    is_object_id,
    reminder_key,
)
from taskmesh_notifications.listing import ListQuery

NOTIFICATIONS: Final = "notifications"
RECIPIENTS: Final = "recipients"
DELETED_USERS: Final = "deleted_users"
DUE_TASKS: Final = "due_tasks"
REMINDERS: Final = "reminders"

DELETED_TASK_TTL_S: Final = 30 * 24 * 3600
"""How long a deleted task's tombstone is kept: as long as the consumer remembers event ids."""
REMINDER_TTL_S: Final = 24 * 3600
"""How long a reminder's record outlives its due date: a past due date is never reminded of."""

NEWEST_FIRST: Final = [("created_at", DESCENDING), ("_id", DESCENDING)]

INDEXES: IndexPlan = {
    NOTIFICATIONS: [
        # A user's notifications, newest first: the keyset order after the equality, so a
        # page is a range of this index (MarkAllRead and the deletion of a user use it too).
        IndexModel(
            [("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
            name="user_id_created_at_id",
        ),
        # The same for the unread ones only.
        IndexModel(
            [
                ("user_id", ASCENDING),
                ("read", ASCENDING),
                ("created_at", DESCENDING),
                ("_id", DESCENDING),
            ],
            name="user_id_read_created_at_id",
        ),
    ],
    DUE_TASKS: [
        # The reminder scan: due dates still to remind of, in a time range. Sparse: only
        # tasks with a pending reminder have an entry.
        IndexModel([("pending_due_at", ASCENDING)], name="pending_due_at", sparse=True),
        IndexModel(
            [("deleted_at", ASCENDING)],
            name="deleted_at_ttl",
            expireAfterSeconds=DELETED_TASK_TTL_S,
        ),
    ],
    REMINDERS: [
        IndexModel([("due_at", ASCENDING)], name="due_at_ttl", expireAfterSeconds=REMINDER_TTL_S)
    ],
}


class Outcome(StrEnum):
    """What an event did to a read copy."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    """Already so: the copy existed, or the stored state is newer than the event."""
    DELETED = "deleted"
    """The user or task is deleted (tombstoned): nothing was written."""


async def ensure_collections(database: AsyncDatabase[Document]) -> None:
    """Create the collections that transactions write, so that none is created inside one.

    Those with indexes exist by now; `recipients` and `deleted_users` have none.
    """
    for name in (NOTIFICATIONS, RECIPIENTS, DELETED_USERS, DUE_TASKS, REMINDERS):
        with contextlib.suppress(CollectionInvalid):
            await database.create_collection(name)


# --- notifications -----------------------------------------------------------------------


def notification_from(document: Document) -> Notification:
    """A notification from its stored form."""
    return Notification(
        id=str(document["_id"]),
        user_id=document["user_id"],
        type=document["type"],
        title=document["title"],
        body=document["body"],
        task_id=document.get("task_id"),
        read=document["read"],
        created_at=document["created_at"],
    )


class MongoNotificationStore:
    """The in-app notifications in MongoDB."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._notifications: AsyncCollection[Document] = database[NOTIFICATIONS]

    async def insert(
        self, new: NewNotification, created_at: datetime, session: AsyncClientSession
    ) -> Notification:
        """Store a new, unread notification in the caller's transaction; return it."""
        document: Document = {
            "_id": ObjectId(),
            "user_id": new.user_id,
            "type": new.type.value,
            "title": new.title,
            "body": new.body,
            "task_id": new.task_id,
            "read": False,
            "created_at": created_at,
        }
        await self._notifications.insert_one(document, session=session)
        return notification_from(document)

    async def list_page(self, query: ListQuery) -> list[Notification]:
        """Up to `limit + 1` of the user's notifications after the cursor, newest first.

        After a cursor (c, i) the page is `{created_at: c, _id < i}` and then
        `{created_at < c}`: two AND-only ranges of the same index instead of one `$or`.
        """
        wanted = query.limit + 1
        documents: list[Document] = []
        for conditions, sort in self._ranges(query):
            cursor = self._notifications.find(conditions).sort(sort).limit(wanted - len(documents))
            documents += await cursor.to_list()
            if len(documents) >= wanted:
                break
        return [notification_from(document) for document in documents]

    async def explain_page(self, query: ListQuery) -> list[Document]:
        """The server's explain() of each query of a list page (for tests and docs)."""
        plans = []
        for conditions, sort in self._ranges(query):
            cursor = self._notifications.find(conditions).sort(sort).limit(query.limit + 1)
            plans.append(await cursor.explain())
        return plans

    def _ranges(self, query: ListQuery) -> list[tuple[Document, list[tuple[str, int]]]]:
        # Plain equalities: the user id comes from the verified token and `read` is our bool,
        # never a client's document.
        base: Document = {"user_id": query.user_id}
        if query.unread_only:
            base["read"] = False
        after = query.after
        if after is None:
            return [(base, NEWEST_FIRST)]
        return [
            (
                {**base, "created_at": after.created_at, "_id": {"$lt": ObjectId(after.id)}},
                NEWEST_FIRST,
            ),
            ({**base, "created_at": {"$lt": after.created_at}}, NEWEST_FIRST),
        ]

    async def mark_read(self, user_id: str, notification_id: str) -> bool:
        """Mark the user's notification read; False when the user has none with that id."""
        if not is_object_id(notification_id):
            return False
        result = await self._notifications.update_one(
            {"_id": ObjectId(notification_id), "user_id": user_id}, {"$set": {"read": True}}
        )
        return result.matched_count == 1

    async def mark_all_read(self, user_id: str) -> int:
        """Mark every unread notification of the user read; return how many changed."""
        result = await self._notifications.update_many(
            {"user_id": user_id, "read": False}, {"$set": {"read": True}}
        )
        return result.modified_count

    async def delete_all_of(self, user_id: str, session: AsyncClientSession) -> int:
        """Delete every notification of the user in the caller's transaction; return how many."""
        result = await self._notifications.delete_many({"user_id": user_id}, session=session)
        return result.deleted_count


# --- recipients (the read copies of profiles) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class RecipientLookup:
    """What is known of a user here: their copy, or that they are deleted, or neither."""

    recipient: Recipient | None
    deleted: bool = False


def recipient_from(document: Document) -> Recipient:
    """A recipient from its stored form."""
    return Recipient(
        user_id=document["_id"],
        email=document["email"],
        name=document["name"],
        timezone=document["timezone"],
        email_notifications=document["email_notifications"],
    )


def recipient_fields(recipient: Recipient, at: datetime) -> Document:
    """The stored fields of a recipient copy as of `at`."""
    return {
        "email": recipient.email,
        "name": recipient.name,
        "timezone": recipient.timezone,
        "email_notifications": recipient.email_notifications,
        "profile_at": at,
    }


class RecipientCopies:
    """The users' read copies, written by the consumer through its transaction's session."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._recipients: AsyncCollection[Document] = database[RECIPIENTS]
        self._deleted: AsyncCollection[Document] = database[DELETED_USERS]

    async def lookup(self, user_id: str, session: AsyncClientSession) -> RecipientLookup:
        """The user's copy, or whether they are deleted."""
        document = await self._recipients.find_one({"_id": user_id}, session=session)
        if document is not None:
            return RecipientLookup(recipient_from(document))
        return RecipientLookup(None, deleted=await self.is_deleted(user_id, session))

    async def is_deleted(self, user_id: str, session: AsyncClientSession) -> bool:
        """Whether the user was deleted (their tombstone exists)."""
        found = await self._deleted.find_one({"_id": user_id}, {"_id": 1}, session=session)
        return found is not None

    async def register(
        self, recipient: Recipient, at: datetime, session: AsyncClientSession
    ) -> RecipientLookup:
        """Store a new user's copy unless one exists or they are deleted; return what is stored.

        A copy may exist already: a `user.profile_updated` applied first keeps its newer values.
        """
        if await self.is_deleted(recipient.user_id, session):
            return RecipientLookup(None, deleted=True)
        await self._recipients.update_one(
            {"_id": recipient.user_id},
            {"$setOnInsert": recipient_fields(recipient, at)},
            upsert=True,
            session=session,
        )
        return await self.lookup(recipient.user_id, session)

    async def update(
        self, recipient: Recipient, at: datetime, session: AsyncClientSession
    ) -> Outcome:
        """Apply a profile as of `at`, unless a newer one was applied or the user is deleted.

        A user without a copy yet gets one: the profile carries every field a copy has. Of
        two profiles stamped with the same millisecond (a registration and an update right
        after it), the one applied last stays.
        """
        result = await self._recipients.update_one(
            {"_id": recipient.user_id, "profile_at": {"$lte": at}},
            {"$set": recipient_fields(recipient, at)},
            session=session,
        )
        if result.matched_count == 1:
            return Outcome.APPLIED
        if await self._recipients.find_one({"_id": recipient.user_id}, {"_id": 1}, session=session):
            return Outcome.UNCHANGED
        if await self.is_deleted(recipient.user_id, session):
            return Outcome.DELETED
        await self._recipients.insert_one(
            {"_id": recipient.user_id, **recipient_fields(recipient, at)}, session=session
        )
        return Outcome.APPLIED

    async def delete(self, user_id: str, at: datetime, session: AsyncClientSession) -> Outcome:
        """Delete the user's copy and keep their tombstone (once: the first deletion's time)."""
        result = await self._recipients.delete_one({"_id": user_id}, session=session)
        await self._deleted.update_one(
            {"_id": user_id}, {"$setOnInsert": {"deleted_at": at}}, upsert=True, session=session
        )
        return Outcome.APPLIED if result.deleted_count else Outcome.UNCHANGED


# --- due_tasks and reminders ------------------------------------------------------------------


def task_from(document: Document) -> TaskCopy:
    """A task copy from its stored form."""
    return TaskCopy(
        id=document["_id"],
        owner_id=document["owner_id"],
        assignee_id=document.get("assignee_id"),
        title=document["title"],
        due_at=document.get("due_at"),
        done=document["done"],
        version=document["version"],
    )


def task_fields(task: TaskCopy) -> Document:
    """The stored fields of a task copy (without `_id` and the reminder state)."""
    return {
        "owner_id": task.owner_id,
        "assignee_id": task.assignee_id,
        "title": task.title,
        "due_at": task.due_at,
        "done": task.done,
        "version": task.version,
    }


class DueTasks:
    """The tasks' read copies and the reminders sent for their due dates."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._tasks: AsyncCollection[Document] = database[DUE_TASKS]
        self._reminders: AsyncCollection[Document] = database[REMINDERS]

    # --- the consumer's writes -------------------------------------------------------------

    async def apply(self, task: TaskCopy, session: AsyncClientSession) -> TaskCopy | None:
        """Store the task as of its version unless a newer one is stored; return the current copy.

        None when the task is deleted (its tombstone stays). The reminder becomes pending
        when the task has a due date, is not done and was not reminded of for that date.
        """
        values = task_fields(task)
        update: Document = {"$set": values}
        if task.needs_reminder and not await self._was_reminded(task, session):
            values["pending_due_at"] = task.due_at
        else:
            update["$unset"] = {"pending_due_at": ""}
        result = await self._tasks.update_one(
            {"_id": task.id, "version": {"$lt": task.version}, "deleted_at": {"$exists": False}},
            update,
            session=session,
        )
        if result.matched_count == 1:
            return task
        existing = await self._tasks.find_one({"_id": task.id}, session=session)
        if existing is None:
            await self._tasks.insert_one({"_id": task.id, **values}, session=session)
            return task
        return None if "deleted_at" in existing else task_from(existing)

    async def get(self, task_id: str, session: AsyncClientSession) -> TaskCopy | None:
        """The current copy of the task; None when it is unknown or deleted."""
        document = await self._tasks.find_one({"_id": task_id}, session=session)
        if document is None or "deleted_at" in document:
            return None
        return task_from(document)

    async def delete(self, task_id: str, at: datetime, session: AsyncClientSession) -> Outcome:
        """Replace the task's copy by its tombstone (kept DELETED_TASK_TTL_S), nothing pending.

        A tombstone stops every later or replayed event of the task from bringing it back.
        """
        result = await self._tasks.update_one(
            {"_id": task_id, "deleted_at": {"$exists": False}},
            {
                "$set": {"deleted_at": at},
                "$unset": {"pending_due_at": "", "due_at": "", "title": ""},
            },
            session=session,
        )
        if result.matched_count == 1:
            return Outcome.APPLIED
        if await self._tasks.find_one({"_id": task_id}, {"_id": 1}, session=session):
            return Outcome.UNCHANGED
        await self._tasks.insert_one({"_id": task_id, "deleted_at": at}, session=session)
        return Outcome.APPLIED

    async def _was_reminded(self, task: TaskCopy, session: AsyncClientSession) -> bool:
        assert task.due_at is not None
        key = reminder_key(task.id, task.due_at)
        return await self._reminders.find_one({"_id": key}, {"_id": 1}, session=session) is not None

    # --- the scheduler's ----------------------------------------------------------------------

    async def pending_between(self, start: datetime, end: datetime, limit: int) -> list[TaskCopy]:
        """Up to `limit` tasks with a pending reminder due in (start, end], soonest first."""
        cursor = self._tasks.find(self._pending_conditions(start, end))
        documents = await cursor.sort("pending_due_at", ASCENDING).limit(limit).to_list()
        return [task_from(document) for document in documents]

    async def explain_pending(self, start: datetime, end: datetime, limit: int) -> Document:
        """The server's explain() of the reminder scan (for tests and docs)."""
        cursor = self._tasks.find(self._pending_conditions(start, end))
        plan: Document = await cursor.sort("pending_due_at", ASCENDING).limit(limit).explain()
        return plan

    @staticmethod
    def _pending_conditions(start: datetime, end: datetime) -> Document:
        return {"pending_due_at": {"$gt": start, "$lte": end}}

    async def take_reminder(self, task: TaskCopy, session: AsyncClientSession) -> bool:
        """Clear the task's pending reminder if it is still the one read; False otherwise.

        False means another instance took it, or the task changed since it was read (its
        next scan sees the new state).
        """
        result = await self._tasks.update_one(
            {"_id": task.id, "version": task.version, "pending_due_at": task.due_at},
            {"$unset": {"pending_due_at": ""}},
            session=session,
        )
        return result.modified_count == 1

    async def record_reminder(
        self, task: TaskCopy, reminded_at: datetime, session: AsyncClientSession
    ) -> None:
        """Record that the task's due date was reminded of; DuplicateKeyError if it was before."""
        assert task.due_at is not None
        await self._reminders.insert_one(
            {
                "_id": reminder_key(task.id, task.due_at),
                "task_id": task.id,
                "due_at": task.due_at,
                "reminded_at": reminded_at,
            },
            session=session,
        )

    async def drop_pending(self, task: TaskCopy) -> None:
        """Clear a pending reminder whose due date was already reminded of."""
        await self._tasks.update_one(
            {"_id": task.id, "version": task.version, "pending_due_at": task.due_at},
            {"$unset": {"pending_due_at": ""}},
        )
