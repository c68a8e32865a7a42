"""Roles, deactivation, deletion and the bootstrap admin, over fakes of the adapters."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from taskmesh.common.v1 import common_pb2
from taskmesh_auth.domain import (
    AccountDeactivated,
    Actor,
    CannotChangeOwnStanding,
    InvalidRefreshToken,
    LastActiveAdmin,
    NotAllowed,
    Role,
    StandingChange,
    UserNotFound,
    WrongCredentials,
)
from taskmesh_auth.events import (
    USER_DEACTIVATED,
    USER_DELETED,
    USER_REACTIVATED,
    USER_REGISTERED,
    USER_ROLE_CHANGED,
)
from taskmesh_auth.service import AdminOutcome, PasswordRequired

from .fakes import Harness, actor_of, make_harness

PASSWORD = "correct horse battery staple"


@pytest.fixture
def auth() -> Harness:
    return make_harness()


async def admin_actor(auth: Harness, email: str = "root@example.com") -> Actor:
    await auth.service.ensure_admin(email, PASSWORD, require_password_match=True)
    return actor_of(auth, await auth.service.login(email, PASSWORD))


async def test_admin_promotes_a_user(auth: Harness) -> None:
    admin = await admin_actor(auth)
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    updated = await auth.service.update_user(admin, user.id, StandingChange(role=Role.ADMIN))

    assert updated.role is Role.ADMIN
    [event] = auth.store.events_of(USER_ROLE_CHANGED)
    assert (event.payload.old_role, event.payload.new_role, event.payload.actor_id) == (
        common_pb2.ROLE_USER,
        common_pb2.ROLE_ADMIN,
        admin.user_id,
    )


async def test_role_change_revokes_existing_access_tokens(auth: Harness) -> None:
    admin = await admin_actor(auth)
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    await auth.service.update_user(admin, user.id, StandingChange(role=Role.ADMIN))

    assert auth.revocation.not_before[user.id] == auth.clock.now.timestamp()
    assert user.id in auth.revocation.forgotten_me


async def test_role_change_keeps_the_session_refreshable_with_the_new_role(
    auth: Harness,
) -> None:
    admin = await admin_actor(auth)
    user, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    await auth.service.update_user(admin, user.id, StandingChange(role=Role.ADMIN))

    refreshed = await auth.service.refresh(tokens.refresh_token)

    assert auth.tokens.verify(refreshed.access_token).role is Role.ADMIN


async def test_deactivation_ends_sessions_and_emits_deactivated(auth: Harness) -> None:
    admin = await admin_actor(auth)
    user, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    updated = await auth.service.update_user(admin, user.id, StandingChange(active=False))

    assert not updated.active
    assert [e.subject for e in auth.store.events_of(USER_DEACTIVATED)] == [user.id]
    with pytest.raises(InvalidRefreshToken):
        await auth.service.refresh(tokens.refresh_token)
    with pytest.raises(AccountDeactivated):
        await auth.service.login("ada@example.com", PASSWORD)


async def test_reactivation_emits_reactivated_and_allows_login(auth: Harness) -> None:
    admin = await admin_actor(auth)
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    await auth.service.update_user(admin, user.id, StandingChange(active=False))

    await auth.service.update_user(admin, user.id, StandingChange(active=True))

    assert [e.subject for e in auth.store.events_of(USER_REACTIVATED)] == [user.id]
    await auth.service.login("ada@example.com", PASSWORD)


async def test_unchanged_standing_emits_nothing_and_revokes_nothing(auth: Harness) -> None:
    admin = await admin_actor(auth)
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    before = len(auth.store.events)

    await auth.service.update_user(admin, user.id, StandingChange(role=Role.USER, active=True))

    assert len(auth.store.events) == before
    assert user.id not in auth.revocation.not_before


@pytest.mark.parametrize(
    "change", [StandingChange(role=Role.USER), StandingChange(active=False)], ids=str
)
async def test_admin_cannot_demote_or_deactivate_themself(
    auth: Harness, change: StandingChange
) -> None:
    admin = await admin_actor(auth)
    await admin_actor(auth, "second@example.com")

    with pytest.raises(CannotChangeOwnStanding) as raised:
        await auth.service.update_user(admin, admin.user_id, change)

    assert raised.value.status_code == grpc.StatusCode.ABORTED


async def test_non_admin_cannot_change_standing(auth: Harness) -> None:
    user, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    with pytest.raises(NotAllowed) as raised:
        await auth.service.update_user(
            actor_of(auth, tokens), user.id, StandingChange(role=Role.ADMIN)
        )

    assert raised.value.status_code == grpc.StatusCode.PERMISSION_DENIED


async def test_admin_demoted_since_their_token_was_issued_is_refused(auth: Harness) -> None:
    first = await admin_actor(auth)
    second = await admin_actor(auth, "second@example.com")
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    await auth.service.update_user(second, first.user_id, StandingChange(role=Role.USER))

    with pytest.raises(NotAllowed):
        await auth.service.update_user(first, user.id, StandingChange(active=False))


async def test_update_of_unknown_user_is_not_found(auth: Harness) -> None:
    admin = await admin_actor(auth)

    with pytest.raises(UserNotFound):
        await auth.service.update_user(admin, "e" * 24, StandingChange(active=False))


async def test_last_active_admin_cannot_delete_themself(auth: Harness) -> None:
    admin = await admin_actor(auth)

    with pytest.raises(LastActiveAdmin) as raised:
        await auth.service.delete_user(admin, admin.user_id)

    assert raised.value.status_code == grpc.StatusCode.ABORTED


async def test_an_admin_may_leave_when_another_remains(auth: Harness) -> None:
    admin = await admin_actor(auth)
    await admin_actor(auth, "second@example.com")

    await auth.service.delete_user(admin, admin.user_id)

    assert await auth.store.count_active_admins() == 1


async def test_user_deletes_themself_and_login_stops_at_once(auth: Harness) -> None:
    user, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    await auth.service.delete_user(actor_of(auth, tokens), user.id)

    assert auth.revocation.not_before[user.id] == auth.clock.now.timestamp()
    with pytest.raises(WrongCredentials):
        await auth.service.login("ada@example.com", PASSWORD)
    with pytest.raises(InvalidRefreshToken):
        await auth.service.refresh(tokens.refresh_token)
    [event] = auth.store.events_of(USER_DELETED)
    assert (event.payload.user_id, event.payload.actor_id) == (user.id, user.id)


async def test_user_cannot_delete_someone_else(auth: Harness) -> None:
    _, ada = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    bob, _ = await auth.service.register("bob@example.com", PASSWORD, "Bob")

    with pytest.raises(NotAllowed):
        await auth.service.delete_user(actor_of(auth, ada), bob.id)

    assert bob.id in auth.store.data.users


async def test_admin_deletes_a_user(auth: Harness) -> None:
    admin = await admin_actor(auth)
    bob, _ = await auth.service.register("bob@example.com", PASSWORD, "Bob")

    await auth.service.delete_user(admin, bob.id)

    assert bob.id not in auth.store.data.users
    assert auth.store.events_of(USER_DELETED)[0].payload.actor_id == admin.user_id


async def test_ensure_admin_creates_the_account_once(auth: Harness) -> None:
    first = await auth.service.ensure_admin(
        "Root@example.com", PASSWORD, require_password_match=True
    )
    second = await auth.service.ensure_admin(
        "root@example.com", PASSWORD, require_password_match=True
    )

    assert (first, second) == (AdminOutcome.CREATED, AdminOutcome.UNCHANGED)
    [user] = auth.store.data.users.values()
    assert (user.email, user.role, user.active) == ("root@example.com", Role.ADMIN, True)
    [event] = auth.store.events_of(USER_REGISTERED)
    assert (event.payload.name, event.payload.role) == ("root", common_pb2.ROLE_ADMIN)


async def test_bootstrap_promotes_an_existing_account_with_that_password(auth: Harness) -> None:
    user, _ = await auth.service.register("root@example.com", PASSWORD, "Root")

    outcome = await auth.service.ensure_admin(
        "root@example.com", PASSWORD, require_password_match=True
    )

    assert outcome is AdminOutcome.PROMOTED
    assert auth.store.data.users[user.id].role is Role.ADMIN
    assert auth.store.events_of(USER_ROLE_CHANGED)[0].payload.actor_id == ""


async def test_bootstrap_refuses_to_promote_an_account_with_another_password(
    auth: Harness,
) -> None:
    user, _ = await auth.service.register("root@example.com", "squatter's password", "Root")

    outcome = await auth.service.ensure_admin(
        "root@example.com", PASSWORD, require_password_match=True
    )

    assert outcome is AdminOutcome.REFUSED
    assert auth.store.data.users[user.id].role is Role.USER


async def test_admin_command_promotes_without_a_password(auth: Harness) -> None:
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    outcome = await auth.service.ensure_admin("ada@example.com", None, require_password_match=False)

    assert outcome is AdminOutcome.PROMOTED
    assert auth.store.data.users[user.id].role is Role.ADMIN


async def test_admin_command_needs_a_password_to_create(auth: Harness) -> None:
    with pytest.raises(PasswordRequired):
        await auth.service.ensure_admin("new@example.com", None, require_password_match=False)


async def test_ensure_admin_reactivates_a_deactivated_admin(auth: Harness) -> None:
    first = await admin_actor(auth)
    second = await admin_actor(auth, "second@example.com")
    await auth.service.update_user(first, second.user_id, StandingChange(active=False))

    outcome = await auth.service.ensure_admin(
        "second@example.com", PASSWORD, require_password_match=True
    )

    assert outcome is AdminOutcome.PROMOTED
    assert auth.store.data.users[second.user_id].active
    assert [e.subject for e in auth.store.events_of(USER_REACTIVATED)] == [second.user_id]


async def test_role_change_also_revokes_tokens_issued_while_it_committed(auth: Harness) -> None:
    admin = await admin_actor(auth)
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    started = auth.clock.now.timestamp()
    committing = auth.store.run_in_transaction

    async def slow_commit(work: Any) -> Any:
        auth.clock.advance(0.5)  # a refresh may issue an old-role token meanwhile
        return await committing(work)

    auth.store.run_in_transaction = slow_commit  # type: ignore[method-assign]

    await auth.service.update_user(admin, user.id, StandingChange(role=Role.ADMIN))

    assert auth.revocation.not_before[user.id] == started + 0.5
