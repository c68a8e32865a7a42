"""Changing, forgetting and resetting passwords, over fakes of the adapters."""

from __future__ import annotations

import grpc
import pytest
from taskmesh_auth.domain import (
    DependencyUnavailable,
    InvalidRefreshToken,
    InvalidResetToken,
    WrongCredentials,
    WrongCurrentPassword,
)
from taskmesh_auth.events import USER_PASSWORD_CHANGED, USER_PASSWORD_RESET_REQUESTED
from taskmesh_auth.tokens import hash_opaque_token
from taskmesh_chassis.errors import InvalidArgument

from .fakes import Harness, actor_of, make_harness

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "tr0ub4dor&3 but longer"


@pytest.fixture
def auth() -> Harness:
    return make_harness()


async def _reset_token_for(auth: Harness, email: str) -> str:
    await auth.service.issue_reset_token(email)
    token: str = auth.store.events_of(USER_PASSWORD_RESET_REQUESTED)[-1].payload.reset_token
    return token


async def test_change_password_makes_the_new_password_the_one(auth: Harness) -> None:
    _, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    await auth.service.change_password(actor_of(auth, tokens), PASSWORD, NEW_PASSWORD)

    await auth.service.login("ada@example.com", NEW_PASSWORD)
    with pytest.raises(WrongCredentials):
        await auth.service.login("ada@example.com", PASSWORD)


async def test_change_password_revokes_other_sessions_but_keeps_the_callers(
    auth: Harness,
) -> None:
    _, mine = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    other = await auth.service.login("ada@example.com", PASSWORD)
    actor = actor_of(auth, mine)

    await auth.service.change_password(actor, PASSWORD, NEW_PASSWORD)

    assert auth.revocation.revoked_sessions == {actor_of(auth, other).session_id}
    assert auth.revocation.not_before == {}
    with pytest.raises(InvalidRefreshToken):
        await auth.service.refresh(other.refresh_token)
    await auth.service.refresh(mine.refresh_token)


async def test_change_password_emits_password_changed(auth: Harness) -> None:
    user, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    await auth.service.change_password(actor_of(auth, tokens), PASSWORD, NEW_PASSWORD)

    [event] = auth.store.events_of(USER_PASSWORD_CHANGED)
    assert (event.payload.user_id, event.payload.via_reset) == (user.id, False)


async def test_change_password_with_wrong_current_password_is_unauthenticated(
    auth: Harness,
) -> None:
    _, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    with pytest.raises(WrongCurrentPassword) as raised:
        await auth.service.change_password(actor_of(auth, tokens), "wrong one", NEW_PASSWORD)

    assert raised.value.status_code == grpc.StatusCode.UNAUTHENTICATED
    await auth.service.login("ada@example.com", PASSWORD)


async def test_change_password_rejects_the_email_as_new_password(auth: Harness) -> None:
    _, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    with pytest.raises(InvalidArgument) as raised:
        await auth.service.change_password(actor_of(auth, tokens), PASSWORD, "Ada@Example.com")

    assert [error.loc for error in raised.value.errors] == [("body", "new_password")]


async def test_change_password_fails_unchanged_when_revocation_is_down(auth: Harness) -> None:
    _, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    await auth.service.login("ada@example.com", PASSWORD)
    auth.revocation.down = True

    with pytest.raises(DependencyUnavailable) as raised:
        await auth.service.change_password(actor_of(auth, tokens), PASSWORD, NEW_PASSWORD)

    assert raised.value.status_code == grpc.StatusCode.UNAVAILABLE
    assert not any(session.revoked for session in auth.store.data.sessions.values())
    await auth.service.login("ada@example.com", PASSWORD)


async def test_forgot_password_for_unknown_email_issues_nothing(auth: Harness) -> None:
    await auth.service.issue_reset_token("nobody@example.com")

    assert auth.store.events == []
    assert auth.store.data.reset_tokens == {}


async def test_forgot_password_issues_a_token_stored_only_as_a_hash(auth: Harness) -> None:
    user, _ = await auth.service.register("Ada@example.com", PASSWORD, "Ada")

    token = await _reset_token_for(auth, "ADA@example.com ")

    [stored] = auth.store.data.reset_tokens.values()
    assert stored.token_hash == hash_opaque_token(token) != token
    [event] = auth.store.events_of(USER_PASSWORD_RESET_REQUESTED)
    assert (event.payload.user_id, event.payload.email) == (user.id, "ada@example.com")
    assert event.payload.expires_at.ToDatetime().timestamp() == pytest.approx(
        auth.clock.now.timestamp() + 3600, abs=1
    )


async def test_forgot_password_answers_at_once_and_issues_in_the_background(
    auth: Harness,
) -> None:
    await auth.service.register("ada@example.com", PASSWORD, "Ada")

    await auth.service.forgot_password("ada@example.com")
    await auth.service.stop()

    assert len(auth.store.events_of(USER_PASSWORD_RESET_REQUESTED)) == 1


async def test_reset_password_sets_the_password_and_revokes_all_sessions(
    auth: Harness,
) -> None:
    user, first = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    second = await auth.service.login("ada@example.com", PASSWORD)
    token = await _reset_token_for(auth, "ada@example.com")

    await auth.service.reset_password(token, NEW_PASSWORD)

    assert auth.revocation.not_before[user.id] == auth.clock.now.timestamp()
    assert user.id in auth.revocation.forgotten_me
    for tokens in (first, second):
        with pytest.raises(InvalidRefreshToken):
            await auth.service.refresh(tokens.refresh_token)
    await auth.service.login("ada@example.com", NEW_PASSWORD)
    [event] = auth.store.events_of(USER_PASSWORD_CHANGED)
    assert event.payload.via_reset


async def test_reset_token_is_single_use(auth: Harness) -> None:
    await auth.service.register("ada@example.com", PASSWORD, "Ada")
    token = await _reset_token_for(auth, "ada@example.com")
    await auth.service.reset_password(token, NEW_PASSWORD)

    with pytest.raises(InvalidResetToken):
        await auth.service.reset_password(token, "yet another password")


async def test_expired_reset_token_is_rejected(auth: Harness) -> None:
    await auth.service.register("ada@example.com", PASSWORD, "Ada")
    token = await _reset_token_for(auth, "ada@example.com")
    auth.clock.advance(3600)

    with pytest.raises(InvalidResetToken):
        await auth.service.reset_password(token, NEW_PASSWORD)


async def test_bad_reset_token_is_invalid_argument_about_the_token(auth: Harness) -> None:
    with pytest.raises(InvalidResetToken) as raised:
        await auth.service.reset_password("made-up", NEW_PASSWORD)

    assert raised.value.status_code == grpc.StatusCode.INVALID_ARGUMENT
    assert [error.loc for error in raised.value.errors] == [("body", "token")]


async def test_changing_the_password_voids_outstanding_reset_tokens(auth: Harness) -> None:
    _, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    token = await _reset_token_for(auth, "ada@example.com")

    await auth.service.change_password(actor_of(auth, tokens), PASSWORD, NEW_PASSWORD)

    with pytest.raises(InvalidResetToken):
        await auth.service.reset_password(token, "yet another password")


async def test_reset_rejects_the_email_as_new_password_and_keeps_the_token(
    auth: Harness,
) -> None:
    await auth.service.register("ada@example.com", PASSWORD, "Ada")
    token = await _reset_token_for(auth, "ada@example.com")

    with pytest.raises(InvalidArgument) as raised:
        await auth.service.reset_password(token, "ada@example.com")

    assert [error.loc for error in raised.value.errors] == [("body", "new_password")]
    await auth.service.reset_password(token, NEW_PASSWORD)
