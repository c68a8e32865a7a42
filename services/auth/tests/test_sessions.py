"""Refresh-token rotation, reuse detection and logout, over fakes of the adapters."""

from __future__ import annotations

import grpc
import pytest
from taskmesh_auth.domain import (
    AccountDeactivated,
    InvalidRefreshToken,
    RefreshTokenReused,
)
from taskmesh_auth.tokens import hash_opaque_token

from .fakes import Harness, actor_of, make_harness

PASSWORD = "correct horse battery staple"


@pytest.fixture
def auth() -> Harness:
    return make_harness()


async def test_refresh_returns_a_new_pair_in_the_same_session(auth: Harness) -> None:
    _, first = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    second = await auth.service.refresh(first.refresh_token)

    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert (
        auth.tokens.verify(second.access_token).session_id
        == auth.tokens.verify(first.access_token).session_id
    )


async def test_refresh_tokens_are_stored_only_as_hashes(auth: Harness) -> None:
    _, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    assert list(auth.store.data.refresh_tokens) == [hash_opaque_token(tokens.refresh_token)]


async def test_a_refreshed_token_stops_working_for_the_client(auth: Harness) -> None:
    _, first = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    await auth.service.refresh(first.refresh_token)

    with pytest.raises(InvalidRefreshToken) as raised:
        await auth.service.refresh(first.refresh_token)

    assert raised.value.status_code == grpc.StatusCode.UNAUTHENTICATED


async def test_refresh_token_reuse_revokes_family(auth: Harness) -> None:
    _, first = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    session_id = auth.tokens.verify(first.access_token).session_id
    second = await auth.service.refresh(first.refresh_token)

    with pytest.raises(RefreshTokenReused):
        await auth.service.refresh(first.refresh_token)

    assert session_id in auth.revocation.revoked_sessions
    assert auth.store.data.sessions[session_id].revoked
    with pytest.raises(InvalidRefreshToken):
        await auth.service.refresh(second.refresh_token)


async def test_refresh_token_reuse_leaves_other_sessions_alone(auth: Harness) -> None:
    _, first = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    other = await auth.service.login("ada@example.com", PASSWORD)
    await auth.service.refresh(first.refresh_token)

    with pytest.raises(RefreshTokenReused):
        await auth.service.refresh(first.refresh_token)

    await auth.service.refresh(other.refresh_token)


async def test_unknown_refresh_token_is_unauthenticated(auth: Harness) -> None:
    with pytest.raises(InvalidRefreshToken):
        await auth.service.refresh("not-a-token-we-issued")


async def test_expired_refresh_token_is_unauthenticated() -> None:
    auth = make_harness(refresh_ttl_s=3600)
    _, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    auth.clock.advance(3601)

    with pytest.raises(InvalidRefreshToken):
        await auth.service.refresh(tokens.refresh_token)


async def test_rotation_extends_the_session() -> None:
    auth = make_harness(refresh_ttl_s=3600)
    _, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    for _ in range(3):
        auth.clock.advance(3000)
        tokens = await auth.service.refresh(tokens.refresh_token)

    auth.clock.advance(3000)
    await auth.service.refresh(tokens.refresh_token)


async def test_refresh_of_a_deactivated_user_is_permission_denied(auth: Harness) -> None:
    user, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    # Deactivated behind the session's back (deactivation itself also ends the sessions).
    auth.store.data.users[user.id] = user.with_standing(role=None, active=False)

    with pytest.raises(AccountDeactivated):
        await auth.service.refresh(tokens.refresh_token)


async def test_logout_revokes_the_access_token_until_it_expires(auth: Harness) -> None:
    _, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    actor = actor_of(auth, tokens)

    await auth.service.logout(actor, tokens.refresh_token)

    assert auth.revocation.revoked_tokens == {actor.token_id: actor.token_expires_at}
    assert auth.revocation.forgotten_me == [actor.user_id]


async def test_logout_ends_the_refresh_tokens_session(auth: Harness) -> None:
    _, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    actor = actor_of(auth, tokens)

    await auth.service.logout(actor, tokens.refresh_token)

    assert auth.revocation.revoked_sessions == {actor.session_id}
    with pytest.raises(InvalidRefreshToken):
        await auth.service.refresh(tokens.refresh_token)


async def test_logout_without_refresh_token_ends_the_access_tokens_session(
    auth: Harness,
) -> None:
    _, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    actor = actor_of(auth, tokens)

    await auth.service.logout(actor, None)

    assert auth.revocation.revoked_sessions == {actor.session_id}
    with pytest.raises(InvalidRefreshToken):
        await auth.service.refresh(tokens.refresh_token)


async def test_logout_with_another_users_refresh_token_leaves_their_session(
    auth: Harness,
) -> None:
    _, ada = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    _, bob = await auth.service.register("bob@example.com", PASSWORD, "Bob")
    ada_actor = actor_of(auth, ada)

    await auth.service.logout(ada_actor, bob.refresh_token)

    assert auth.revocation.revoked_sessions == {ada_actor.session_id}
    await auth.service.refresh(bob.refresh_token)


async def test_logout_leaves_the_users_other_sessions(auth: Harness) -> None:
    _, first = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    second = await auth.service.login("ada@example.com", PASSWORD)

    await auth.service.logout(actor_of(auth, first), first.refresh_token)

    await auth.service.refresh(second.refresh_token)
