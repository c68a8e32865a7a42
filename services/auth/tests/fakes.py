"""Small in-memory stand-ins for the auth service's adapters, for the use-case tests."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import Message
from taskmesh_auth.domain import (
    Actor,
    DependencyUnavailable,
    EmailTaken,
    RefreshToken,
    ResetToken,
    Role,
    Session,
    User,
)
from taskmesh_auth.profiles import NewProfile, ProfileNotCreated
from taskmesh_auth.service import AuthService, TokenPair
from taskmesh_auth.tokens import AccessTokens, KeyStore

T = TypeVar("T")


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        # Real time, so that tokens it stamps pass pyjwt's checks against the real clock.
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakePasswordHasher:
    """'Hashes' as `<params>$<salt>$<password>`; a hash of other params needs a rehash."""

    def __init__(self, params: str = "m=19456,t=2") -> None:
        self.params = params
        self.verified: list[str] = []
        self._salts = itertools.count()

    async def hash(self, password: str) -> str:
        return f"{self.params}${next(self._salts)}${password}"

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        return password_hash.split("$", 2)[2] == password

    def needs_rehash(self, password_hash: str) -> bool:
        return not password_hash.startswith(f"{self.params}$")


@dataclass
class FakeRevocationStore:
    """Records what was revoked, in order; `down` makes every write fail like a lost Redis."""

    revoked_tokens: dict[str, float] = field(default_factory=dict)
    revoked_sessions: set[str] = field(default_factory=set)
    not_before: dict[str, float] = field(default_factory=dict)
    forgotten_me: list[str] = field(default_factory=list)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise DependencyUnavailable("the revocation store is unavailable")

    async def revoke_token(self, token_id: str, expires_at: float) -> None:
        self._check()
        self.revoked_tokens[token_id] = expires_at

    async def revoke_sessions(self, session_ids: Iterable[str]) -> None:
        self._check()
        self.revoked_sessions.update(session_ids)

    async def revoke_user_tokens_before(self, user_id: str, moment: float) -> None:
        self._check()
        self.not_before[user_id] = max(moment, self.not_before.get(user_id, 0.0))

    async def forget_cached_me(self, user_id: str) -> None:
        self._check()
        self.forgotten_me.append(user_id)


@dataclass
class FakeProfileCreator:
    """Records the profiles asked for; `failure`, a gRPC code name, makes every request fail."""

    created: list[NewProfile] = field(default_factory=list)
    failure: str | None = None

    async def create_profile(self, profile: NewProfile) -> None:
        if self.failure is not None:
            raise ProfileNotCreated(self.failure)
        self.created.append(profile)


@dataclass
class StoredEvent:
    type: str
    subject: str
    payload: Message


@dataclass
class FakeData:
    users: dict[str, User] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    reset_tokens: dict[str, ResetToken] = field(default_factory=dict)


class FakeTransaction:
    def __init__(self, data: FakeData) -> None:
        self.data = data
        self.events: list[StoredEvent] = []

    async def user_by_id(self, user_id: str) -> User | None:
        return self.data.users.get(user_id)

    async def add_user(self, user: User) -> None:
        if any(existing.email == user.email for existing in self.data.users.values()):
            raise EmailTaken()
        self.data.users[user.id] = user

    async def set_password_hash(self, user_id: str, password_hash: str, at: datetime) -> None:
        self.data.users[user_id] = replace(self.data.users[user_id], password_hash=password_hash)

    async def set_standing(self, user_id: str, role: Role, active: bool, at: datetime) -> None:
        self.data.users[user_id] = replace(self.data.users[user_id], role=role, active=active)

    async def delete_user(self, user_id: str) -> None:
        del self.data.users[user_id]
        for table in (self.data.sessions, self.data.refresh_tokens, self.data.reset_tokens):
            for key in [key for key, row in table.items() if row.user_id == user_id]:
                del table[key]

    async def open_session(self, session: Session, refresh_token: RefreshToken) -> None:
        self.data.sessions[session.id] = session
        self.data.refresh_tokens[refresh_token.token_hash] = refresh_token

    async def revoke_sessions_of(
        self, user_id: str, at: datetime, *, except_session_id: str | None = None
    ) -> None:
        for session in list(self.data.sessions.values()):
            if session.user_id == user_id and session.id != except_session_id:
                self.data.sessions[session.id] = replace(session, revoked=True)

    async def add_reset_token(self, token: ResetToken) -> None:
        self.data.reset_tokens[token.token_hash] = token

    async def use_reset_token(self, token_hash: str, at: datetime) -> bool:
        token = self.data.reset_tokens.get(token_hash)
        if token is None or token.used:
            return False
        self.data.reset_tokens[token_hash] = replace(token, used=True)
        return True

    async def delete_reset_tokens_of(self, user_id: str) -> None:
        for key in [k for k, t in self.data.reset_tokens.items() if t.user_id == user_id]:
            del self.data.reset_tokens[key]

    async def count_active_admins_exclusively(self) -> int:
        return sum(user.is_active_admin for user in self.data.users.values())

    def add_event(self, event_type: str, *, subject: str, payload: Message) -> None:
        self.events.append(StoredEvent(event_type, subject, payload))


class FakeAuthStore:
    """The store in dictionaries; a transaction that raises leaves them as they were."""

    def __init__(self) -> None:
        self.data = FakeData()
        self.events: list[StoredEvent] = []
        self._ids = itertools.count(1)

    def new_user_id(self) -> str:
        return f"{next(self._ids):024x}"

    async def user_by_id(self, user_id: str) -> User | None:
        return self.data.users.get(user_id)

    async def user_by_email(self, email: str) -> User | None:
        return next((u for u in self.data.users.values() if u.email == email), None)

    async def count_active_admins(self) -> int:
        return sum(user.is_active_admin for user in self.data.users.values())

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> bool:
        user = self.data.users[user_id]
        if user.password_hash != old_hash:
            return False
        self.data.users[user_id] = replace(user, password_hash=new_hash)
        return True

    async def session(self, session_id: str) -> Session | None:
        return self.data.sessions.get(session_id)

    async def live_session_ids(self, user_id: str, now: datetime) -> list[str]:
        return [
            s.id
            for s in self.data.sessions.values()
            if s.user_id == user_id and not s.revoked and s.expires_at > now
        ]

    async def open_session(self, session: Session, refresh_token: RefreshToken) -> None:
        await FakeTransaction(self.data).open_session(session, refresh_token)

    async def revoke_session(self, session_id: str, at: datetime) -> None:
        session = self.data.sessions.get(session_id)
        if session is not None:
            self.data.sessions[session_id] = replace(session, revoked=True)

    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        return self.data.refresh_tokens.get(token_hash)

    async def use_refresh_token(self, token_hash: str, at: datetime) -> bool:
        token = self.data.refresh_tokens.get(token_hash)
        if token is None or token.used:
            return False
        self.data.refresh_tokens[token_hash] = replace(token, used=True)
        return True

    async def add_refresh_token(self, token: RefreshToken) -> None:
        self.data.refresh_tokens[token.token_hash] = token
        session = self.data.sessions[token.session_id]
        expires_at = max(session.expires_at, token.expires_at)
        self.data.sessions[token.session_id] = replace(session, expires_at=expires_at)

    async def reset_token(self, token_hash: str) -> ResetToken | None:
        return self.data.reset_tokens.get(token_hash)

    async def run_in_transaction(self, work: Callable[[Any], Awaitable[T]]) -> T:
        snapshot = copy.deepcopy(self.data)
        transaction = FakeTransaction(self.data)
        try:
            result = await work(transaction)
        except BaseException:
            self.data.users, self.data.sessions = snapshot.users, snapshot.sessions
            self.data.refresh_tokens = snapshot.refresh_tokens
            self.data.reset_tokens = snapshot.reset_tokens
            raise
        self.events.extend(transaction.events)
        return result

    def events_of(self, event_type: str) -> list[StoredEvent]:
        return [event for event in self.events if event.type == event_type]


@dataclass
class Harness:
    """An AuthService over fakes, and the fakes, for the tests to look into."""

    service: AuthService
    store: FakeAuthStore
    passwords: FakePasswordHasher
    revocation: FakeRevocationStore
    profiles: FakeProfileCreator
    clock: FakeClock
    tokens: AccessTokens


def make_harness(
    *, access_ttl_s: int = 900, refresh_ttl_s: int = 2_592_000, reset_ttl_s: int = 3600
) -> Harness:
    store = FakeAuthStore()
    passwords = FakePasswordHasher()
    revocation = FakeRevocationStore()
    profiles = FakeProfileCreator()
    clock = FakeClock()
    tokens = AccessTokens(
        KeyStore(Ed25519PrivateKey.generate()),
        issuer="taskmesh",
        audience="taskmesh-api",
        ttl_s=access_ttl_s,
    )
    service = AuthService(
        store,
        passwords,
        tokens,
        revocation,
        profiles,
        refresh_token_ttl_s=refresh_ttl_s,
        reset_token_ttl_s=reset_ttl_s,
        clock=clock,
    )
    return Harness(service, store, passwords, revocation, profiles, clock, tokens)


def actor_of(harness: Harness, tokens: TokenPair) -> Actor:
    """The caller that the access token of `tokens` makes, as the chassis would verify it."""
    claims = harness.tokens.verify(tokens.access_token)
    return Actor(
        user_id=claims.user_id,
        role=claims.role,
        token_id=claims.token_id,
        token_expires_at=claims.expires_at,
        session_id=claims.session_id,
    )
