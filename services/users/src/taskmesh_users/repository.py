"""MongoDB access of the users service: profiles, tombstones of deleted users, the outbox.

    profiles       {_id: user id (ObjectId), email, name, bio, timezone, email_notifications,
                    role, active, created_at, updated_at, identity_at: {role, active}, search}
    deleted_users  {_id: user id, deleted_at}: kept, so that no late write brings a deleted
                    user's profile back; an id and a time, no personal data

`identity_at` holds, per copied field of auth's identity, the time of the change last
applied to it (registration time at first): an event changes `role` or `active` only if it
is newer than that, so a retried or replayed event never undoes a newer state. Queries use
equality and range conditions joined by AND, never `$or` (SecantusDB scans for any `$or`),
and no `find_one_and_update` (it scans too): see docs/users.md.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Protocol, TypeVar

from bson import ObjectId
from google.protobuf.message import Message
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, DuplicateKeyError, OperationFailure
from taskmesh_chassis.events import Outbox, UnitOfWork
from taskmesh_chassis.mongo import Document, IndexPlan

from taskmesh_users.domain import Change, Profile, ProfileBusy, Role, is_object_id
from taskmesh_users.listing import ListQuery

PROFILES: Final = "profiles"
DELETED_USERS: Final = "deleted_users"
MAX_PROFILES_PER_EMAIL: Final = 10
"""More than one only while a deleted account's profile and its successor's coexist."""

T = TypeVar("T")

INDEXES: IndexPlan = {
    PROFILES: [
        # LookupByEmail. Not unique: a deleted account's profile may still carry the address
        # when it is registered again (the user.deleted event is on its way).
        IndexModel([("email", ASCENDING)], name="email"),
        # ListUsers filtered by role or by active flag: the equality, then the keyset order.
        IndexModel([("role", ASCENDING), ("_id", ASCENDING)], name="role_id"),
        IndexModel([("active", ASCENDING), ("_id", ASCENDING)], name="active_id"),
    ],
}


class IdentityField(StrEnum):
    """The copies of auth's identity that events change, each ordered by its own time."""

    ROLE = "role"
    ACTIVE = "active"


class Outcome(StrEnum):
    """What an event did to the read copy."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    """Already so: the profile existed, or the stored state is newer than the event."""
    DELETED = "deleted"
    """The user is deleted (tombstoned): nothing was written."""
    MISSING = "missing"
    """No profile yet and no tombstone: the user.registered event has not been applied."""


# --- documents ---------------------------------------------------------------------------


def search_text(name: str, email: str) -> str:
    """What `q` searches: name and email, lower-cased (so no case-insensitive regex)."""
    return f"{name}\n{email}".lower()


def profile_document(profile: Profile) -> Document:
    """The stored form of a new profile; its identity copies are as of its registration."""
    return {
        "_id": ObjectId(profile.id),
        "email": profile.email,
        "name": profile.name,
        "bio": profile.bio,
        "timezone": profile.timezone,
        "email_notifications": profile.email_notifications,
        "role": profile.role.value,
        "active": profile.active,
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
        "identity_at": {field.value: profile.created_at for field in IdentityField},
        "search": search_text(profile.name, profile.email),
    }


def profile_from(document: Document) -> Profile:
    """A profile from its stored form."""
    return Profile(
        id=str(document["_id"]),
        email=document["email"],
        name=document["name"],
        bio=document["bio"],
        timezone=document["timezone"],
        email_notifications=document["email_notifications"],
        role=Role(document["role"]),
        active=document["active"],
        created_at=document["created_at"],
        updated_at=document["updated_at"],
    )


def list_conditions(query: ListQuery) -> Document:
    """The conditions of a list page; client values appear only as operands.

    Role and active flag are compared by plain equality: both are our own typed values (an
    enum's string, a bool), never a client's document, and SecantusDB serves an equality
    with a range on `_id` from the index only in this form (with `$eq` it scans).
    """
    profile_filter = query.filter
    conditions: Document = {}
    if profile_filter.role is not None:
        conditions["role"] = profile_filter.role.value
    if profile_filter.active is not None:
        conditions["active"] = bool(profile_filter.active)
    if profile_filter.text:
        conditions["search"] = {"$regex": re.escape(profile_filter.text)}
    if query.after is not None:
        conditions["_id"] = {"$gt": ObjectId(query.after)}
    return conditions


LIST_SORT: Final = [("_id", ASCENDING)]


# --- writes shared by the RPCs and the consumer ------------------------------------------


async def _in_transaction(outbox: Outbox, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run `work` in an outbox transaction; ProfileBusy if it kept meeting write conflicts.

    The outbox retries a transient conflict at once, a few times; writers of one profile
    that keep colliding end here, to back off (a lost connection is no conflict: it
    propagates, and is UNAVAILABLE at the edge).
    """
    try:
        return await outbox.run_in_transaction(work)
    except OperationFailure as error:
        if error.has_error_label("TransientTransactionError"):
            raise ProfileBusy() from error
        raise


async def _is_deleted(
    deleted: AsyncCollection[Document], user_id: ObjectId, session: AsyncClientSession | None
) -> bool:
    return await deleted.find_one({"_id": user_id}, {"_id": 1}, session=session) is not None


async def _insert_if_absent(
    profiles: AsyncCollection[Document],
    deleted: AsyncCollection[Document],
    profile: Profile,
    session: AsyncClientSession,
) -> Outcome:
    """Store a new profile unless one exists or the user is deleted (in `session`'s transaction).

    An upsert that only sets fields on insert: an existing profile is left as it is.
    """
    user_id = ObjectId(profile.id)
    if await _is_deleted(deleted, user_id, session):
        return Outcome.DELETED
    document = profile_document(profile)
    del document["_id"]
    result = await profiles.update_one(
        {"_id": user_id}, {"$setOnInsert": document}, upsert=True, session=session
    )
    return Outcome.APPLIED if result.upserted_id is not None else Outcome.UNCHANGED


# --- the profile store (RPCs) -------------------------------------------------------------


class ProfileTransaction(Protocol):
    """Writes to profiles that commit together with the events they publish."""

    async def save(self, change: Change) -> Profile | None:
        """Store `change.after` if the changed fields still hold `change.before`'s values.

        Returns the stored profile as re-read, or None when they moved on (or it is gone).
        """
        ...

    def add_event(self, event_type: str, *, subject: str, payload: Message) -> None:
        """Publish this event if, and only if, the transaction commits."""
        ...


class ProfileStore(Protocol):
    """The profiles: reads, lists, creation, and transactions that change them."""

    async def get(self, user_id: str) -> Profile | None:
        """The profile of this user id (any 24-hex string; None for anything else), if any."""
        ...

    async def is_deleted(self, user_id: str) -> bool:
        """Whether the user was deleted (their tombstone exists)."""
        ...

    async def create(self, profile: Profile) -> Profile | None:
        """Store a new profile unless one exists; the stored one, or None if the user is deleted."""
        ...

    async def with_email(self, email: str) -> list[Profile]:
        """The profiles carrying this (normalised) email: rarely more than one."""
        ...

    async def list_page(self, query: ListQuery) -> list[Profile]:
        """Up to `query.limit + 1` profiles after `query.after`, in `_id` order."""
        ...

    async def run_in_transaction(self, work: Callable[[ProfileTransaction], Awaitable[T]]) -> T:
        """Run `work` in one transaction (again from the start on a transient conflict).

        ProfileBusy when the conflicts go on.
        """
        ...


class _MongoProfileTransaction:
    def __init__(self, profiles: AsyncCollection[Document], uow: UnitOfWork) -> None:
        self._profiles = profiles
        self._uow = uow
        self._session: AsyncClientSession = uow.session

    async def save(self, change: Change) -> Profile | None:
        # A conditional update_one and a find_one by _id, not find_one_and_update (which scans
        # on SecantusDB). Read in the transaction, the re-read is exactly our write.
        user_id = ObjectId(change.before.id)
        expected = {field: getattr(change.before, field) for field in change.changed}
        after = change.after
        values: Document = {**change.changed, "updated_at": after.updated_at}
        if "name" in change.changed:
            values["search"] = search_text(after.name, after.email)
        result = await self._profiles.update_one(
            {"_id": user_id, **expected}, {"$set": values}, session=self._session
        )
        if result.matched_count != 1:
            return None
        stored = await self._profiles.find_one({"_id": user_id}, session=self._session)
        return None if stored is None else profile_from(stored)

    def add_event(self, event_type: str, *, subject: str, payload: Message) -> None:
        self._uow.add_event(event_type, subject=subject, payload=payload)


class MongoProfileStore:
    """Profiles in MongoDB; writes go through the outbox's transactions."""

    def __init__(self, database: AsyncDatabase[Document], outbox: Outbox) -> None:
        self._profiles: AsyncCollection[Document] = database[PROFILES]
        self._deleted: AsyncCollection[Document] = database[DELETED_USERS]
        self._outbox = outbox

    async def get(self, user_id: str) -> Profile | None:
        """The profile with this id, if any."""
        if not is_object_id(user_id):
            return None
        document = await self._profiles.find_one({"_id": ObjectId(user_id)})
        return None if document is None else profile_from(document)

    async def is_deleted(self, user_id: str) -> bool:
        """Whether the user's tombstone exists."""
        return is_object_id(user_id) and await _is_deleted(self._deleted, ObjectId(user_id), None)

    async def create(self, profile: Profile) -> Profile | None:
        """Store the profile unless one exists, in a transaction that checks the tombstone.

        The user.registered consumer may insert the same `_id` at the same moment: the loser
        sees a write conflict (and is retried) or a duplicate key; either way the profile
        that won is returned.
        """

        async def insert(uow: UnitOfWork) -> Profile | None:
            outcome = await _insert_if_absent(self._profiles, self._deleted, profile, uow.session)
            if outcome is Outcome.DELETED:
                return None
            stored = await self._profiles.find_one(
                {"_id": ObjectId(profile.id)}, session=uow.session
            )
            return None if stored is None else profile_from(stored)

        try:
            return await _in_transaction(self._outbox, insert)
        except DuplicateKeyError:
            return await self.get(profile.id)

    async def with_email(self, email: str) -> list[Profile]:
        """The profiles with this email (an equality on a string: served by the email index)."""
        cursor = self._profiles.find({"email": email}).limit(MAX_PROFILES_PER_EMAIL)
        return [profile_from(document) async for document in cursor]

    async def list_page(self, query: ListQuery) -> list[Profile]:
        """Up to `limit + 1` profiles after the cursor, in `_id` order."""
        cursor = self._profiles.find(list_conditions(query)).sort(LIST_SORT).limit(query.limit + 1)
        return [profile_from(document) async for document in cursor]

    async def explain_page(self, query: ListQuery) -> Document:
        """The server's explain() of a list page's query (for tests and docs)."""
        cursor = self._profiles.find(list_conditions(query)).sort(LIST_SORT)
        plan: Document = await cursor.limit(query.limit + 1).explain()
        return plan

    async def explain_lookup(self, email: str) -> Document:
        """The server's explain() of the email lookup's query (for tests and docs)."""
        plan: Document = (
            await self._profiles.find({"email": email}).limit(MAX_PROFILES_PER_EMAIL).explain()
        )
        return plan

    async def run_in_transaction(self, work: Callable[[ProfileTransaction], Awaitable[T]]) -> T:
        """Run `work` in one outbox transaction, retried from the start on write conflicts."""

        async def attempt(uow: UnitOfWork) -> T:
            return await work(_MongoProfileTransaction(self._profiles, uow))

        return await _in_transaction(self._outbox, attempt)


# --- the read copies of auth's identity (the consumer) -------------------------------------


class IdentityCopies:
    """The consumer's writes: profiles created, changed and deleted as auth's events say.

    Every method writes only through the given session, the consumer's transaction that
    also records the event as processed.
    """

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._profiles: AsyncCollection[Document] = database[PROFILES]
        self._deleted: AsyncCollection[Document] = database[DELETED_USERS]

    async def create(self, profile: Profile, session: AsyncClientSession) -> Outcome:
        """Create the profile unless it exists or the user is deleted."""
        return await _insert_if_absent(self._profiles, self._deleted, profile, session)

    async def change(
        self,
        user_id: str,
        field: IdentityField,
        value: Any,
        at: datetime,
        session: AsyncClientSession,
    ) -> Outcome:
        """Set `field` to `value` if the change at `at` is newer than the field's last one."""
        oid = ObjectId(user_id)
        stamp = f"identity_at.{field.value}"
        result = await self._profiles.update_one(
            {"_id": oid, stamp: {"$lt": at}},
            {"$set": {field.value: value, stamp: at}, "$max": {"updated_at": at}},
            session=session,
        )
        if result.matched_count == 1:
            return Outcome.APPLIED
        if await self._profiles.find_one({"_id": oid}, {"_id": 1}, session=session) is not None:
            return Outcome.UNCHANGED
        if await _is_deleted(self._deleted, oid, session):
            return Outcome.DELETED
        return Outcome.MISSING

    async def delete(self, user_id: str, at: datetime, session: AsyncClientSession) -> Outcome:
        """Delete the profile and keep the user's tombstone (once: its first deletion time)."""
        oid = ObjectId(user_id)
        result = await self._profiles.delete_one({"_id": oid}, session=session)
        if result.deleted_count == 0:
            # Write the profile's key even though there is none: a CreateProfile inserting it
            # concurrently (having seen no tombstone) then conflicts with this transaction
            # instead of committing beside it and bringing the profile back.
            await self._profiles.update_one(
                {"_id": oid}, {"$set": {"deleted": True}}, upsert=True, session=session
            )
            await self._profiles.delete_one({"_id": oid}, session=session)
        await self._deleted.update_one(
            {"_id": oid}, {"$setOnInsert": {"deleted_at": at}}, upsert=True, session=session
        )
        return Outcome.APPLIED if result.deleted_count else Outcome.UNCHANGED


async def ensure_collections(database: AsyncDatabase[Document]) -> None:
    """Create the collections that transactions write, so that none is created inside one.

    `profiles` has indexes, so it exists by now; `deleted_users` has none.
    """
    for name in (PROFILES, DELETED_USERS):
        with contextlib.suppress(CollectionInvalid):
            await database.create_collection(name)
