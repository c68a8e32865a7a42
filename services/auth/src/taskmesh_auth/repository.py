"""MongoDB access of the auth service: accounts, sessions, refresh and reset tokens, the outbox.

Tokens are stored under their SHA-256 as `_id`, so every token lookup and every single-use
claim (`update_one({_id, used: false})`) is served by the primary key. Expired sessions and
tokens are removed by TTL indexes; the code never trusts that removal to be prompt and
checks expiry itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final, Protocol, TypeVar

from bson import ObjectId
from google.protobuf.message import Message
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from taskmesh_chassis.events import Outbox, UnitOfWork
from taskmesh_chassis.mongo import Document, IndexPlan

from taskmesh_auth.domain import (
    EmailTaken,
    RefreshToken,
    ResetToken,
    Role,
    Session,
    User,
)

USERS: Final = "users"
SESSIONS: Final = "sessions"
REFRESH_TOKENS: Final = "refresh_tokens"
RESET_TOKENS: Final = "reset_tokens"
LOCKS: Final = "locks"
# Every transaction that removes an active admin writes this document, so two of them
# running at once conflict and one is retried: the count of remaining admins it read stays
# true until it commits (snapshot isolation alone would let both remove "the other" admin).
ADMIN_ROSTER: Final = "admin_roster"

T = TypeVar("T")

INDEXES: IndexPlan = {
    # One account per email; emails are stored lower-cased, so this also makes them
    # unique case-insensitively.
    USERS: [
        IndexModel([("email", ASCENDING)], unique=True),
        IndexModel([("role", ASCENDING), ("active", ASCENDING)], name="role_active"),
    ],
    SESSIONS: [
        IndexModel([("user_id", ASCENDING)], name="user_id"),
        IndexModel([("expires_at", ASCENDING)], name="expires_at_ttl", expireAfterSeconds=0),
    ],
    REFRESH_TOKENS: [
        IndexModel([("session_id", ASCENDING)], name="session_id"),
        IndexModel([("user_id", ASCENDING)], name="user_id"),
        IndexModel([("expires_at", ASCENDING)], name="expires_at_ttl", expireAfterSeconds=0),
    ],
    RESET_TOKENS: [
        IndexModel([("user_id", ASCENDING)], name="user_id"),
        IndexModel([("expires_at", ASCENDING)], name="expires_at_ttl", expireAfterSeconds=0),
    ],
}


class AuthTransaction(Protocol):
    """Writes that commit together, with the events they publish."""

    async def user_by_id(self, user_id: str) -> User | None:
        """The account, as this transaction sees it."""
        ...

    async def add_user(self, user: User) -> None:
        """Insert an account; EmailTaken if its email is taken."""
        ...

    async def set_password_hash(self, user_id: str, password_hash: str, at: datetime) -> None:
        """Replace the account's password hash."""
        ...

    async def set_standing(self, user_id: str, role: Role, active: bool, at: datetime) -> None:
        """Set the account's role and active flag."""
        ...

    async def delete_user(self, user_id: str) -> None:
        """Delete the account with its sessions, refresh tokens and reset tokens."""
        ...

    async def open_session(self, session: Session, refresh_token: RefreshToken) -> None:
        """Insert a session with its first refresh token."""
        ...

    async def revoke_sessions_of(
        self, user_id: str, at: datetime, *, except_session_id: str | None = None
    ) -> None:
        """Revoke every session of the user, but the excepted one."""
        ...

    async def add_reset_token(self, token: ResetToken) -> None:
        """Store a password-reset token."""
        ...

    async def use_reset_token(self, token_hash: str, at: datetime) -> bool:
        """Mark an unused reset token used; False if it was used already (or is unknown)."""
        ...

    async def delete_reset_tokens_of(self, user_id: str) -> None:
        """Forget every reset token of the user."""
        ...

    async def count_active_admins_exclusively(self) -> int:
        """Count the active admins, conflicting with any other transaction that does too."""
        ...

    def add_event(self, event_type: str, *, subject: str, payload: Message) -> None:
        """Publish this event if, and only if, the transaction commits."""
        ...


class AuthStore(Protocol):
    """The auth service's data: reads, single-document writes, and transactions."""

    def new_user_id(self) -> str:
        """A fresh account id."""
        ...

    async def user_by_id(self, user_id: str) -> User | None:
        """The account with this id, if any."""
        ...

    async def user_by_email(self, email: str) -> User | None:
        """The account with this (normalised) email, if any."""
        ...

    async def count_active_admins(self) -> int:
        """How many accounts are active admins."""
        ...

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> bool:
        """Swap the hash if it is still `old_hash` (a rehash must not undo a change)."""
        ...

    async def session(self, session_id: str) -> Session | None:
        """The session with this id, if any."""
        ...

    async def live_session_ids(self, user_id: str, now: datetime) -> list[str]:
        """The ids of the user's sessions that are neither revoked nor expired."""
        ...

    async def open_session(self, session: Session, refresh_token: RefreshToken) -> None:
        """Insert a session with its first refresh token."""
        ...

    async def revoke_session(self, session_id: str, at: datetime) -> None:
        """Revoke one session (and so every refresh token of its family)."""
        ...

    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        """The stored refresh token with this hash, if any."""
        ...

    async def use_refresh_token(self, token_hash: str, at: datetime) -> bool:
        """Mark an unused refresh token used; False if it was used already."""
        ...

    async def add_refresh_token(self, token: RefreshToken) -> None:
        """Store the next refresh token of a session and extend the session to its expiry."""
        ...

    async def reset_token(self, token_hash: str) -> ResetToken | None:
        """The stored reset token with this hash, if any."""
        ...

    async def run_in_transaction(self, work: Callable[[AuthTransaction], Awaitable[T]]) -> T:
        """Run `work` in one transaction (again, from the start, after a transient conflict)."""
        ...


# --- documents ---------------------------------------------------------------------------


def _object_id(user_id: str) -> ObjectId | None:
    return ObjectId(user_id) if ObjectId.is_valid(user_id) else None


def _user_from(document: Document) -> User:
    return User(
        id=str(document["_id"]),
        email=document["email"],
        password_hash=document["password_hash"],
        role=Role(document["role"]),
        active=bool(document["active"]),
        created_at=document["created_at"],
    )


def _user_document(user: User) -> Document:
    return {
        "_id": ObjectId(user.id),
        "email": user.email,
        "password_hash": user.password_hash,
        "role": user.role.value,
        "active": user.active,
        "created_at": user.created_at,
        "updated_at": user.created_at,
    }


def _session_from(document: Document) -> Session:
    return Session(
        id=document["_id"],
        user_id=document["user_id"],
        created_at=document["created_at"],
        expires_at=document["expires_at"],
        revoked=bool(document.get("revoked", False)),
    )


def _session_document(session: Session) -> Document:
    return {
        "_id": session.id,
        "user_id": session.user_id,
        "created_at": session.created_at,
        "expires_at": session.expires_at,
        "revoked": session.revoked,
    }


def _refresh_token_from(document: Document) -> RefreshToken:
    return RefreshToken(
        token_hash=document["_id"],
        session_id=document["session_id"],
        user_id=document["user_id"],
        created_at=document["created_at"],
        expires_at=document["expires_at"],
        used=bool(document["used"]),
    )


def _refresh_token_document(token: RefreshToken) -> Document:
    return {
        "_id": token.token_hash,
        "session_id": token.session_id,
        "user_id": token.user_id,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "used": token.used,
    }


def _reset_token_from(document: Document) -> ResetToken:
    return ResetToken(
        token_hash=document["_id"],
        user_id=document["user_id"],
        created_at=document["created_at"],
        expires_at=document["expires_at"],
        used=bool(document["used"]),
    )


_ACTIVE_ADMINS: Final[Document] = {"role": Role.ADMIN.value, "active": True}


# --- MongoDB -----------------------------------------------------------------------------


class MongoAuthTransaction:
    """AuthTransaction on one MongoDB transaction of the outbox."""

    def __init__(self, database: AsyncDatabase[Document], uow: UnitOfWork) -> None:
        self._users: AsyncCollection[Document] = database[USERS]
        self._sessions: AsyncCollection[Document] = database[SESSIONS]
        self._refresh_tokens: AsyncCollection[Document] = database[REFRESH_TOKENS]
        self._reset_tokens: AsyncCollection[Document] = database[RESET_TOKENS]
        self._locks: AsyncCollection[Document] = database[LOCKS]
        self._uow = uow

    @property
    def _mongo_session(self) -> AsyncClientSession:
        return self._uow.session

    async def user_by_id(self, user_id: str) -> User | None:
        """The account, as this transaction sees it."""
        object_id = _object_id(user_id)
        if object_id is None:
            return None
        document = await self._users.find_one({"_id": object_id}, session=self._mongo_session)
        return None if document is None else _user_from(document)

    async def add_user(self, user: User) -> None:
        """Insert an account; EmailTaken if its email is taken."""
        try:
            await self._users.insert_one(_user_document(user), session=self._mongo_session)
        except DuplicateKeyError:
            raise EmailTaken() from None

    async def set_password_hash(self, user_id: str, password_hash: str, at: datetime) -> None:
        """Replace the account's password hash."""
        await self._users.update_one(
            {"_id": ObjectId(user_id)},
            {"$set": {"password_hash": password_hash, "updated_at": at}},
            session=self._mongo_session,
        )

    async def set_standing(self, user_id: str, role: Role, active: bool, at: datetime) -> None:
        """Set the account's role and active flag."""
        await self._users.update_one(
            {"_id": ObjectId(user_id)},
            {"$set": {"role": role.value, "active": active, "updated_at": at}},
            session=self._mongo_session,
        )

    async def delete_user(self, user_id: str) -> None:
        """Delete the account with its sessions, refresh tokens and reset tokens."""
        await self._users.delete_one({"_id": ObjectId(user_id)}, session=self._mongo_session)
        for collection in (self._sessions, self._refresh_tokens, self._reset_tokens):
            await collection.delete_many({"user_id": user_id}, session=self._mongo_session)

    async def open_session(self, session: Session, refresh_token: RefreshToken) -> None:
        """Insert a session with its first refresh token."""
        await self._sessions.insert_one(_session_document(session), session=self._mongo_session)
        await self._refresh_tokens.insert_one(
            _refresh_token_document(refresh_token), session=self._mongo_session
        )

    async def revoke_sessions_of(
        self, user_id: str, at: datetime, *, except_session_id: str | None = None
    ) -> None:
        """Revoke every session of the user, but the excepted one."""
        query: Document = {"user_id": user_id, "revoked": False}
        if except_session_id is not None:
            query["_id"] = {"$ne": except_session_id}
        await self._sessions.update_many(
            query, {"$set": {"revoked": True, "revoked_at": at}}, session=self._mongo_session
        )

    async def add_reset_token(self, token: ResetToken) -> None:
        """Store a password-reset token."""
        await self._reset_tokens.insert_one(
            {
                "_id": token.token_hash,
                "user_id": token.user_id,
                "created_at": token.created_at,
                "expires_at": token.expires_at,
                "used": token.used,
            },
            session=self._mongo_session,
        )

    async def use_reset_token(self, token_hash: str, at: datetime) -> bool:
        """Mark an unused reset token used; False if it was used already (or is unknown)."""
        result = await self._reset_tokens.update_one(
            {"_id": token_hash, "used": False},
            {"$set": {"used": True, "used_at": at}},
            session=self._mongo_session,
        )
        return result.modified_count == 1

    async def delete_reset_tokens_of(self, user_id: str) -> None:
        """Forget every reset token of the user."""
        await self._reset_tokens.delete_many({"user_id": user_id}, session=self._mongo_session)

    async def count_active_admins_exclusively(self) -> int:
        """Count the active admins, conflicting with any other transaction that does too."""
        await self._locks.update_one(
            {"_id": ADMIN_ROSTER},
            {"$inc": {"version": 1}},
            upsert=True,
            session=self._mongo_session,
        )
        return await self._users.count_documents(_ACTIVE_ADMINS, session=self._mongo_session)

    def add_event(self, event_type: str, *, subject: str, payload: Message) -> None:
        """Publish this event if, and only if, the transaction commits."""
        self._uow.add_event(event_type, subject=subject, payload=payload)


class MongoAuthStore:
    """AuthStore on the service's MongoDB database and its outbox."""

    def __init__(self, database: AsyncDatabase[Document], outbox: Outbox) -> None:
        self._database = database
        self._outbox = outbox
        self._users: AsyncCollection[Document] = database[USERS]
        self._sessions: AsyncCollection[Document] = database[SESSIONS]
        self._refresh_tokens: AsyncCollection[Document] = database[REFRESH_TOKENS]
        self._reset_tokens: AsyncCollection[Document] = database[RESET_TOKENS]

    def new_user_id(self) -> str:
        """A fresh account id: an ObjectId, 24 hex characters."""
        return str(ObjectId())

    async def prepare(self) -> None:
        """Create what transactions write to (implicit creation inside one would conflict)."""
        await self._database[LOCKS].update_one(
            {"_id": ADMIN_ROSTER}, {"$setOnInsert": {"version": 0}}, upsert=True
        )

    async def user_by_id(self, user_id: str) -> User | None:
        """The account with this id, if any."""
        object_id = _object_id(user_id)
        if object_id is None:
            return None
        document = await self._users.find_one({"_id": object_id})
        return None if document is None else _user_from(document)

    async def user_by_email(self, email: str) -> User | None:
        """The account with this (normalised) email, if any."""
        document = await self._users.find_one({"email": email})
        return None if document is None else _user_from(document)

    async def count_active_admins(self) -> int:
        """How many accounts are active admins."""
        return await self._users.count_documents(_ACTIVE_ADMINS)

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> bool:
        """Swap the hash if it is still `old_hash` (a rehash must not undo a change)."""
        result = await self._users.update_one(
            {"_id": ObjectId(user_id), "password_hash": old_hash},
            {"$set": {"password_hash": new_hash}},
        )
        return result.modified_count == 1

    async def session(self, session_id: str) -> Session | None:
        """The session with this id, if any."""
        document = await self._sessions.find_one({"_id": session_id})
        return None if document is None else _session_from(document)

    async def live_session_ids(self, user_id: str, now: datetime) -> list[str]:
        """The ids of the user's sessions that are neither revoked nor expired."""
        cursor = self._sessions.find(
            {"user_id": user_id, "revoked": False, "expires_at": {"$gt": now}}, {"_id": 1}
        )
        return [document["_id"] async for document in cursor]

    async def open_session(self, session: Session, refresh_token: RefreshToken) -> None:
        """Insert a session, then its first refresh token (a session without one is inert)."""
        await self._sessions.insert_one(_session_document(session))
        await self._refresh_tokens.insert_one(_refresh_token_document(refresh_token))

    async def revoke_session(self, session_id: str, at: datetime) -> None:
        """Revoke one session (and so every refresh token of its family)."""
        await self._sessions.update_one(
            {"_id": session_id}, {"$set": {"revoked": True, "revoked_at": at}}
        )

    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        """The stored refresh token with this hash, if any."""
        document = await self._refresh_tokens.find_one({"_id": token_hash})
        return None if document is None else _refresh_token_from(document)

    async def use_refresh_token(self, token_hash: str, at: datetime) -> bool:
        """Mark an unused refresh token used; False if it was used already."""
        result = await self._refresh_tokens.update_one(
            {"_id": token_hash, "used": False}, {"$set": {"used": True, "used_at": at}}
        )
        return result.modified_count == 1

    async def add_refresh_token(self, token: RefreshToken) -> None:
        """Store the next refresh token of a session and extend the session to its expiry."""
        await self._refresh_tokens.insert_one(_refresh_token_document(token))
        await self._sessions.update_one(
            {"_id": token.session_id}, {"$max": {"expires_at": token.expires_at}}
        )

    async def reset_token(self, token_hash: str) -> ResetToken | None:
        """The stored reset token with this hash, if any."""
        document = await self._reset_tokens.find_one({"_id": token_hash})
        return None if document is None else _reset_token_from(document)

    async def run_in_transaction(self, work: Callable[[AuthTransaction], Awaitable[T]]) -> T:
        """Run `work` in one outbox transaction, retried from the start after a conflict."""

        async def in_transaction(uow: UnitOfWork) -> T:
            return await work(MongoAuthTransaction(self._database, uow))

        return await self._outbox.run_in_transaction(in_transaction)
