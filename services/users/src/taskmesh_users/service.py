"""The users service's use cases: a caller's own profile, the email lookup, the admins' list.

A profile is created once per account: by CreateProfile (auth calls it as register
finishes, so the profile exists when register answers) or by the `user.registered`
consumer, whichever comes first; the identity it copies (email, role, active flag,
registration time) always comes from auth, never from the request. An update is a
conditional write on the values it read, inside the outbox transaction that records its
`user.profile_updated` event; a write that finds them changed is recomputed from the fresh
profile, and one that keeps meeting write conflicts waits a random, growing moment first.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog

from taskmesh_users import events
from taskmesh_users.accounts import AccountDirectory
from taskmesh_users.domain import (
    EMAIL_MAX_LENGTH,
    AdminsOnly,
    Change,
    Clock,
    Profile,
    ProfileBusy,
    ProfileNotFound,
    UserNotFound,
    Viewer,
    apply_changes,
    check_changes,
    check_name,
    is_object_id,
    new_profile,
    normalise_email,
    utc_now,
)
from taskmesh_users.listing import NO_FILTER, ProfileFilter, check_query, encode_cursor
from taskmesh_users.repository import ProfileStore, ProfileTransaction

log = structlog.get_logger(__name__)

MAX_WRITE_ATTEMPTS: Final = 5
"""Recomputations of an update that keeps losing races."""
BACKOFF_S: Final = 0.01
"""Upper bound of the first random wait after a contended write; doubles each time."""


@dataclass(frozen=True, slots=True)
class ProfilePage:
    """One page of the user list and the cursor of the next (None on the last page)."""

    profiles: list[Profile]
    next_cursor: str | None


def require_admin(viewer: Viewer) -> None:
    """AdminsOnly unless the viewer's verified token says admin."""
    if not viewer.is_admin:
        raise AdminsOnly()


class UsersService:
    """The use cases over the profile store and auth's accounts."""

    def __init__(
        self, store: ProfileStore, accounts: AccountDirectory, *, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._clock = clock

    async def create_profile(self, viewer: Viewer, name: str) -> Profile:
        """The viewer's profile, created with `name` and auth's account if there is none.

        Idempotent: an existing profile is returned unchanged. A deleted user (tombstone) or
        an account auth does not know is ProfileNotFound.
        """
        name = check_name(name)
        user_id = viewer.user_id
        if not is_object_id(user_id):
            raise ProfileNotFound()
        existing = await self._store.get(user_id)
        if existing is not None:
            return existing
        if await self._store.is_deleted(user_id):
            raise ProfileNotFound()
        account = await self._accounts.account(user_id)
        if account is None or account.id != user_id:
            raise ProfileNotFound()
        stored = await self._store.create(new_profile(account, name))
        if stored is None:
            raise ProfileNotFound()
        log.info("profile.ensured", user_id=user_id)
        return stored

    async def get_profile(self, viewer: Viewer) -> Profile:
        """The viewer's profile."""
        profile = await self._store.get(viewer.user_id)
        if profile is None:
            raise ProfileNotFound()
        return profile

    async def update_profile(self, viewer: Viewer, values: Mapping[str, Any]) -> Profile:
        """Change the given fields of the viewer's profile; no change, no write and no event."""
        values = check_changes(values)
        for attempt in range(MAX_WRITE_ATTEMPTS):
            profile = await self.get_profile(viewer)
            change = apply_changes(profile, values, self._clock())
            if not change.changed:
                return profile

            async def save(tx: ProfileTransaction, change: Change = change) -> Profile | None:
                stored = await tx.save(change)
                if stored is not None:
                    tx.add_event(
                        events.USER_PROFILE_UPDATED,
                        subject=stored.id,
                        payload=events.profile_updated(stored),
                    )
                return stored

            try:
                stored = await self._store.run_in_transaction(save)
            except ProfileBusy:
                log.info("profile.write_contended", user_id=profile.id, attempt=attempt + 1)
                await asyncio.sleep(random.uniform(0, BACKOFF_S * 2**attempt))  # noqa: S311
                continue
            if stored is not None:
                log.info("profile.updated", user_id=stored.id, changed_fields=list(change.changed))
                return stored
            log.info("profile.write_retried", user_id=profile.id)
        raise ProfileBusy()

    async def lookup_by_email(self, email: str) -> Profile:
        """The active user with this email (exact, case-insensitive); UserNotFound otherwise.

        Should a deleted account's profile and a newer one share the address for a moment,
        the newest active one is the answer.
        """
        email = normalise_email(email)
        if not email or len(email) > EMAIL_MAX_LENGTH or "@" not in email:
            raise UserNotFound()
        active = [profile for profile in await self._store.with_email(email) if profile.active]
        if not active:
            raise UserNotFound()
        return max(active, key=lambda profile: (profile.created_at, profile.id))

    async def list_users(
        self,
        viewer: Viewer,
        *,
        profile_filter: ProfileFilter = NO_FILTER,
        limit: int = 0,
        cursor: str = "",
    ) -> ProfilePage:
        """A page of every profile, filtered, in account-creation order (admins only)."""
        require_admin(viewer)
        query = check_query(profile_filter, limit, cursor)
        profiles = await self._store.list_page(query)
        if len(profiles) <= query.limit:
            return ProfilePage(profiles, None)
        page = profiles[: query.limit]
        return ProfilePage(page, encode_cursor(page[-1].id))

    async def get_user(self, viewer: Viewer, user_id: str) -> Profile:
        """Any user's profile (admins only); UserNotFound for unknown or malformed ids."""
        require_admin(viewer)
        profile = await self._store.get(user_id)
        if profile is None:
            raise UserNotFound()
        return profile
