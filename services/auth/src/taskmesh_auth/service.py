"""The auth service's use cases: accounts, sessions, tokens, passwords, admins.

Every use case that ends access early writes the revocation store first and the database
second (revocation.py): a failure in between leaves more revoked than asked, never less.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import structlog

from taskmesh_auth import events
from taskmesh_auth.domain import (
    NAME_MAX_LENGTH,
    PRESENTED_PASSWORD_MAX_LENGTH,
    AccountDeactivated,
    AccountGone,
    Actor,
    Clock,
    DependencyUnavailable,
    EmailTaken,
    InvalidRefreshToken,
    InvalidResetToken,
    LastActiveAdmin,
    NotAllowed,
    RefreshToken,
    RefreshTokenReused,
    ResetToken,
    Role,
    Session,
    StandingChange,
    User,
    UserNotFound,
    UserStatus,
    WrongCredentials,
    WrongCurrentPassword,
    check_new_password,
    check_registration,
    check_standing_change,
    is_valid_email,
    normalise_email,
    removes_an_active_admin,
)
from taskmesh_auth.passwords import PasswordHasher
from taskmesh_auth.profiles import NewProfile, ProfileCreator, ProfileNotCreated
from taskmesh_auth.repository import AuthStore, AuthTransaction
from taskmesh_auth.revocation import RevocationStore
from taskmesh_auth.tokens import AccessTokens, PublicJwk, hash_opaque_token, new_opaque_token

log = structlog.get_logger(__name__)


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a client receives on login, register and refresh."""

    access_token: str
    refresh_token: str
    expires_in: int


class AdminOutcome(StrEnum):
    """What ensuring an admin account did."""

    CREATED = "created"
    PROMOTED = "promoted"
    UNCHANGED = "unchanged"
    REFUSED = "refused"


class PasswordRequired(Exception):
    """Creating the admin account needs a password and none was given."""


class AuthService:
    """The use cases, over the store, the password hasher, the tokens, revocation and profiles."""

    def __init__(
        self,
        store: AuthStore,
        passwords: PasswordHasher,
        access_tokens: AccessTokens,
        revocation: RevocationStore,
        profiles: ProfileCreator,
        *,
        refresh_token_ttl_s: int,
        reset_token_ttl_s: int,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._passwords = passwords
        self._access_tokens = access_tokens
        self._revocation = revocation
        self._profiles = profiles
        self._refresh_ttl = timedelta(seconds=refresh_token_ttl_s)
        self._reset_ttl = timedelta(seconds=reset_token_ttl_s)
        self._clock = clock
        self._dummy_hash: str | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Prepare what the first request must not pay for (the hash unknown emails verify)."""
        self._dummy_hash = await self._passwords.hash(secrets.token_urlsafe(16))

    async def stop(self) -> None:
        """Let work started in the background (reset emails being issued) finish."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # --- sign-up, sign-in, sessions ---------------------------------------------------------

    async def register(self, email: str, password: str, name: str) -> tuple[User, TokenPair]:
        """Create an account, its first session and its profile; EmailTaken for a taken email.

        The profile is asked of the users service once the account is committed; whether
        that works or not, the account stands (see `_create_profile`).
        """
        email, name = check_registration(email, password, name)
        password_hash = await self._passwords.hash(password)
        now = self._clock()
        user = User(
            id=self._store.new_user_id(),
            email=email,
            password_hash=password_hash,
            role=Role.USER,
            active=True,
            created_at=now,
        )
        session, refresh_token, stored_token = self._new_session(user, now)

        async def create(tx: AuthTransaction) -> None:
            await tx.add_user(user)
            await tx.open_session(session, stored_token)
            tx.add_event(
                events.USER_REGISTERED, subject=user.id, payload=events.user_registered(user, name)
            )

        await self._store.run_in_transaction(create)
        log.info("auth.registered", user_id=user.id, session_id=session.id)
        tokens = self._token_pair(user, session, refresh_token, now)
        await self._create_profile(user, name, tokens.access_token)
        return user, tokens

    async def login(self, email: str, password: str) -> TokenPair:
        """Open a session; WrongCredentials for an unknown email or a wrong password alike."""
        if len(password) > PRESENTED_PASSWORD_MAX_LENGTH:
            raise WrongCredentials()
        user = await self._store.user_by_email(normalise_email(email))
        if user is None:
            # The same work as for a known email, so the answer's timing tells nothing.
            await self._passwords.verify(await self._dummy(), password)
            log.info("auth.login_failed", reason="unknown_email")
            raise WrongCredentials()
        if not await self._passwords.verify(user.password_hash, password):
            log.info("auth.login_failed", reason="wrong_password", user_id=user.id)
            raise WrongCredentials()
        if not user.active:
            log.info("auth.login_refused", reason="deactivated", user_id=user.id)
            raise AccountDeactivated()
        if self._passwords.needs_rehash(user.password_hash):
            await self._rehash(user, password)
        now = self._clock()
        session, refresh_token, stored_token = self._new_session(user, now)
        await self._store.open_session(session, stored_token)
        log.info("auth.logged_in", user_id=user.id, session_id=session.id)
        return self._token_pair(user, session, refresh_token, now)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token; a second use of one revokes its whole session."""
        now = self._clock()
        token_hash = hash_opaque_token(refresh_token)
        stored = await self._store.refresh_token(token_hash)
        if stored is None or stored.is_expired(now):
            raise InvalidRefreshToken()
        session = await self._store.session(stored.session_id)
        if session is None or session.revoked or now >= session.expires_at:
            raise InvalidRefreshToken()
        if stored.used or not await self._store.use_refresh_token(token_hash, now):
            await self._revoke_session(session, reason="refresh_token_reused")
            raise RefreshTokenReused()
        user = await self._store.user_by_id(stored.user_id)
        if user is None:
            raise InvalidRefreshToken()
        if not user.active:
            raise AccountDeactivated()
        next_token = new_opaque_token()
        await self._store.add_refresh_token(
            RefreshToken(
                token_hash=hash_opaque_token(next_token),
                session_id=session.id,
                user_id=user.id,
                created_at=now,
                expires_at=now + self._refresh_ttl,
            )
        )
        log.info("auth.refreshed", user_id=user.id, session_id=session.id)
        return self._token_pair(user, session, next_token, now)

    async def logout(self, actor: Actor, refresh_token: str | None) -> None:
        """End a session of the caller and revoke the presented access token.

        The session is the refresh token's when it is one of the caller's; otherwise (none,
        unknown, someone else's) the one the access token belongs to.
        """
        session_id = actor.session_id
        if refresh_token:
            stored = await self._store.refresh_token(hash_opaque_token(refresh_token))
            if stored is not None and stored.user_id == actor.user_id:
                session_id = stored.session_id
        await self._revocation.revoke_token(actor.token_id, actor.token_expires_at)
        await self._revocation.forget_cached_me(actor.user_id)
        if session_id is not None:
            await self._revocation.revoke_sessions([session_id])
            await self._store.revoke_session(session_id, self._clock())
        log.info("auth.logged_out", user_id=actor.user_id, session_id=session_id)

    async def get_me(self, actor: Actor) -> User:
        """The caller's account."""
        user = await self._store.user_by_id(actor.user_id)
        if user is None:
            raise AccountGone()
        return user

    async def get_user(self, actor: Actor, user_id: str) -> User:
        """Any account, for admins; the caller's own for everyone."""
        if user_id != actor.user_id:
            await self._require_active_admin(actor)
        user = await self._store.user_by_id(user_id)
        if user is None:
            raise UserNotFound()
        return user

    async def get_user_status(self, actor: Actor, user_id: str) -> UserStatus:
        """Whether an account exists and is active; for any caller (other services' checks).

        Nothing else about the account is revealed, so this is no way to enumerate emails.
        """
        user = await self._store.user_by_id(user_id)
        if user is None:
            return UserStatus(user_id=user_id, exists=False, active=False)
        return UserStatus(user_id=user.id, exists=True, active=user.active)

    # --- passwords --------------------------------------------------------------------------

    async def change_password(self, actor: Actor, current_password: str, new_password: str) -> None:
        """Set a new password; every other session of the caller is revoked, theirs stays."""
        user = await self._store.user_by_id(actor.user_id)
        if user is None:
            raise AccountGone()
        if len(current_password) > PRESENTED_PASSWORD_MAX_LENGTH or not (
            await self._passwords.verify(user.password_hash, current_password)
        ):
            log.info("auth.password_change_refused", reason="wrong_password", user_id=user.id)
            raise WrongCurrentPassword()
        check_new_password(new_password, user.email, field="new_password")
        new_hash = await self._passwords.hash(new_password)
        now = self._clock()
        others = [
            session_id
            for session_id in await self._store.live_session_ids(user.id, now)
            if session_id != actor.session_id
        ]
        await self._revocation.revoke_sessions(others)
        await self._revocation.forget_cached_me(user.id)

        async def change(tx: AuthTransaction) -> None:
            await tx.set_password_hash(user.id, new_hash, now)
            await tx.revoke_sessions_of(user.id, now, except_session_id=actor.session_id)
            await tx.delete_reset_tokens_of(user.id)
            tx.add_event(
                events.USER_PASSWORD_CHANGED,
                subject=user.id,
                payload=events.user_password_changed(user, now, via_reset=False),
            )

        await self._store.run_in_transaction(change)
        await self._forget_cached_me_after_commit(user.id)
        log.info("auth.password_changed", user_id=user.id, sessions_revoked=len(others))

    async def forgot_password(self, email: str) -> None:
        """Issue a reset token in the background, so the answer's timing reveals nothing."""
        task = asyncio.create_task(self._issue_reset_token_logging_failures(email))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def issue_reset_token(self, email: str) -> None:
        """If an active account has this email, store a reset token and emit its email event."""
        user = await self._store.user_by_email(normalise_email(email))
        if user is None or not user.active:
            log.info("auth.password_reset_not_issued", reason="no_active_account")
            return
        now = self._clock()
        token = new_opaque_token()
        stored = ResetToken(
            token_hash=hash_opaque_token(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + self._reset_ttl,
        )

        async def issue(tx: AuthTransaction) -> None:
            await tx.add_reset_token(stored)
            tx.add_event(
                events.USER_PASSWORD_RESET_REQUESTED,
                subject=user.id,
                payload=events.user_password_reset_requested(user, token, stored.expires_at),
            )

        await self._store.run_in_transaction(issue)
        log.info("auth.password_reset_issued", user_id=user.id)

    async def reset_password(self, token: str, new_password: str) -> None:
        """Set a password from a single-use reset token; every session of the user is revoked."""
        now = self._clock()
        token_hash = hash_opaque_token(token)
        stored = await self._store.reset_token(token_hash)
        if stored is None or not stored.is_usable(now):
            raise InvalidResetToken()
        user = await self._store.user_by_id(stored.user_id)
        if user is None:
            raise InvalidResetToken()
        check_new_password(new_password, user.email, field="new_password")
        new_hash = await self._passwords.hash(new_password)
        await self._revoke_access_of(user.id, now)

        async def reset(tx: AuthTransaction) -> None:
            if not await tx.use_reset_token(token_hash, now):
                raise InvalidResetToken()
            await tx.set_password_hash(user.id, new_hash, now)
            await tx.revoke_sessions_of(user.id, now)
            await tx.delete_reset_tokens_of(user.id)
            tx.add_event(
                events.USER_PASSWORD_CHANGED,
                subject=user.id,
                payload=events.user_password_changed(user, now, via_reset=True),
            )

        await self._store.run_in_transaction(reset)
        await self._revoke_again_after_commit(user.id)
        log.info("auth.password_reset", user_id=user.id)

    # --- keys -------------------------------------------------------------------------------

    def jwks(self) -> list[PublicJwk]:
        """The public keys that verify access tokens."""
        return self._access_tokens.jwks()

    # --- administration ---------------------------------------------------------------------

    async def update_user(self, actor: Actor, user_id: str, change: StandingChange) -> User:
        """Change an account's role or active flag (admins only)."""
        await self._require_active_admin(actor)
        target = await self._store.user_by_id(user_id)
        if target is None:
            raise UserNotFound()
        changed = check_standing_change(actor.user_id, target, change)
        if changed == target:
            return target
        if (
            removes_an_active_admin(target, changed)
            and await self._store.count_active_admins() <= 1
        ):
            raise LastActiveAdmin()
        now = self._clock()
        await self._revoke_access_of(target.id, now)

        async def update(tx: AuthTransaction) -> User:
            current = await tx.user_by_id(user_id)
            if current is None:
                raise UserNotFound()
            after = check_standing_change(actor.user_id, current, change)
            if after == current:
                return current
            await self._change_standing(tx, current, after, actor.user_id, now)
            return after

        updated = await self._store.run_in_transaction(update)
        await self._revoke_again_after_commit(updated.id)
        log.info(
            "auth.user_updated",
            user_id=updated.id,
            actor_id=actor.user_id,
            role=updated.role.value,
            active=updated.active,
        )
        return updated

    async def delete_user(self, actor: Actor, user_id: str) -> None:
        """Delete an account (admins, or its owner): sign-in stops at once, tokens are revoked."""
        if user_id != actor.user_id:
            await self._require_active_admin(actor)
        target = await self._store.user_by_id(user_id)
        if target is None:
            raise UserNotFound()
        if target.is_active_admin and await self._store.count_active_admins() <= 1:
            raise LastActiveAdmin()
        now = self._clock()
        await self._revoke_access_of(target.id, now)

        async def delete(tx: AuthTransaction) -> None:
            current = await tx.user_by_id(user_id)
            if current is None:
                raise UserNotFound()
            if current.is_active_admin and await tx.count_active_admins_exclusively() <= 1:
                raise LastActiveAdmin()
            await tx.delete_user(current.id)
            tx.add_event(
                events.USER_DELETED,
                subject=current.id,
                payload=events.user_deleted(current, actor.user_id),
            )

        await self._store.run_in_transaction(delete)
        await self._revoke_again_after_commit(user_id)
        log.info("auth.user_deleted", user_id=user_id, actor_id=actor.user_id)

    async def ensure_admin(
        self, email: str, password: str | None, *, require_password_match: bool
    ) -> AdminOutcome:
        """Make the account with this email an active admin, creating it if it is missing.

        With `require_password_match`, an existing account is promoted only if `password`
        is its password: whoever registered the address first must not become admin by it.
        """
        email = normalise_email(email)
        if not is_valid_email(email):
            raise ValueError("not a valid email address")
        user = await self._store.user_by_email(email)
        if user is None:
            if password is None:
                raise PasswordRequired()
            created = await self._create_admin(email, password)
            if created:
                return AdminOutcome.CREATED
            user = await self._store.user_by_email(email)
            if user is None:
                raise RuntimeError("the admin account vanished while it was being created")
        if user.is_active_admin:
            return AdminOutcome.UNCHANGED
        if require_password_match and (
            password is None or not await self._passwords.verify(user.password_hash, password)
        ):
            log.warning("auth.admin_promotion_refused", user_id=user.id, reason="password_mismatch")
            return AdminOutcome.REFUSED
        now = self._clock()
        await self._revoke_access_of(user.id, now)
        promotion = StandingChange(role=Role.ADMIN, active=True)

        async def promote(tx: AuthTransaction) -> None:
            current = await tx.user_by_id(user.id)
            if current is None:
                raise UserNotFound()
            after = current.with_standing(role=promotion.role, active=promotion.active)
            if after != current:
                await self._change_standing(tx, current, after, "", now)

        await self._store.run_in_transaction(promote)
        await self._revoke_again_after_commit(user.id)
        log.info("auth.admin_promoted", user_id=user.id)
        return AdminOutcome.PROMOTED

    # --- helpers ----------------------------------------------------------------------------

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            await self.start()
        assert self._dummy_hash is not None
        return self._dummy_hash

    async def _create_profile(self, user: User, name: str, access_token: str) -> None:
        """Have the profile exist when register answers, with the new account's own token.

        A failure leaves the account registered: the users service creates the same profile
        from the `user.registered` event committed with it.
        """
        profile = NewProfile(user_id=user.id, role=user.role, name=name, access_token=access_token)
        try:
            await self._profiles.create_profile(profile)
        except ProfileNotCreated as failure:
            log.warning("auth.profile_create_failed", user_id=user.id, grpc_code=failure.grpc_code)

    async def _rehash(self, user: User, password: str) -> None:
        new_hash = await self._passwords.hash(password)
        if await self._store.replace_password_hash(user.id, user.password_hash, new_hash):
            log.info("auth.password_rehashed", user_id=user.id)

    def _new_session(self, user: User, now: datetime) -> tuple[Session, str, RefreshToken]:
        expires_at = now + self._refresh_ttl
        session = Session(
            id=uuid.uuid4().hex, user_id=user.id, created_at=now, expires_at=expires_at
        )
        refresh_token = new_opaque_token()
        stored = RefreshToken(
            token_hash=hash_opaque_token(refresh_token),
            session_id=session.id,
            user_id=user.id,
            created_at=now,
            expires_at=expires_at,
        )
        return session, refresh_token, stored

    def _token_pair(
        self, user: User, session: Session, refresh_token: str, now: datetime
    ) -> TokenPair:
        issued = self._access_tokens.issue(
            user_id=user.id, role=user.role, session_id=session.id, now=now
        )
        return TokenPair(issued.token, refresh_token, self._access_tokens.ttl_s)

    async def _revoke_session(self, session: Session, *, reason: str) -> None:
        await self._revocation.revoke_sessions([session.id])
        await self._store.revoke_session(session.id, self._clock())
        log.warning(
            "auth.session_revoked", reason=reason, session_id=session.id, user_id=session.user_id
        )

    async def _revoke_access_of(self, user_id: str, now: datetime) -> None:
        """Revoke every access token of the user issued before `now`; drop their cache."""
        await self._revocation.revoke_user_tokens_before(user_id, now.timestamp())
        await self._revocation.forget_cached_me(user_id)

    async def _revoke_again_after_commit(self, user_id: str) -> None:
        """Revoke the tokens issued while the change was being committed, with the old state.

        The first revocation, written before the change, covers every token issued before
        it began; this one closes the few milliseconds in between. Best effort: the change
        is committed, and its answer must not say otherwise.
        """
        try:
            await self._revocation.revoke_user_tokens_before(user_id, self._clock().timestamp())
            await self._revocation.forget_cached_me(user_id)
        except DependencyUnavailable:
            log.warning("auth.revocation_after_commit_failed", user_id=user_id)

    async def _forget_cached_me_after_commit(self, user_id: str) -> None:
        """Drop a /auth/me answer cached while the change was being committed (best effort)."""
        try:
            await self._revocation.forget_cached_me(user_id)
        except DependencyUnavailable:
            log.warning("auth.revocation_after_commit_failed", user_id=user_id)

    async def _require_active_admin(self, actor: Actor) -> None:
        # The token says admin, but a demotion may be younger than the token.
        if actor.role is not Role.ADMIN:
            raise NotAllowed("only admins may do this")
        current = await self._store.user_by_id(actor.user_id)
        if current is None or not current.is_active_admin:
            raise NotAllowed("only admins may do this")

    async def _change_standing(
        self, tx: AuthTransaction, before: User, after: User, actor_id: str, now: datetime
    ) -> None:
        if (
            removes_an_active_admin(before, after)
            and await tx.count_active_admins_exclusively() <= 1
        ):
            raise LastActiveAdmin()
        await tx.set_standing(after.id, after.role, after.active, now)
        if not after.active:
            await tx.revoke_sessions_of(after.id, now)
        if before.role is not after.role:
            tx.add_event(
                events.USER_ROLE_CHANGED,
                subject=after.id,
                payload=events.user_role_changed(before, after, actor_id),
            )
        if before.active and not after.active:
            tx.add_event(
                events.USER_DEACTIVATED,
                subject=after.id,
                payload=events.user_deactivated(after, actor_id),
            )
        if after.active and not before.active:
            tx.add_event(
                events.USER_REACTIVATED,
                subject=after.id,
                payload=events.user_reactivated(after, actor_id),
            )

    async def _create_admin(self, email: str, password: str) -> bool:
        check_new_password(password, email)
        password_hash = await self._passwords.hash(password)
        now = self._clock()
        admin = User(
            id=self._store.new_user_id(),
            email=email,
            password_hash=password_hash,
            role=Role.ADMIN,
            active=True,
            created_at=now,
        )
        name = email.partition("@")[0][:NAME_MAX_LENGTH]

        async def create(tx: AuthTransaction) -> None:
            await tx.add_user(admin)
            tx.add_event(
                events.USER_REGISTERED,
                subject=admin.id,
                payload=events.user_registered(admin, name),
            )

        try:
            await self._store.run_in_transaction(create)
        except EmailTaken:
            return False
        log.info("auth.admin_created", user_id=admin.id)
        return True

    async def _issue_reset_token_logging_failures(self, email: str) -> None:
        try:
            await self.issue_reset_token(email)
        except Exception:
            log.exception("auth.password_reset_issue_failed")
