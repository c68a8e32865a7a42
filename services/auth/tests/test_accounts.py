"""Registration, login and the account reads, over fakes of the adapters."""

from __future__ import annotations

import grpc
import pytest
from taskmesh_auth.domain import (
    AccountDeactivated,
    AccountGone,
    Actor,
    EmailTaken,
    NotAllowed,
    Role,
    StandingChange,
    UserNotFound,
    WrongCredentials,
)
from taskmesh_auth.events import USER_REGISTERED
from taskmesh_chassis.errors import InvalidArgument

from .fakes import Harness, actor_of, make_harness

PASSWORD = "correct horse battery staple"


@pytest.fixture
def auth() -> Harness:
    return make_harness()


async def test_register_returns_the_user_and_a_token_pair(auth: Harness) -> None:
    user, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    assert (user.email, user.role, user.active) == ("ada@example.com", Role.USER, True)
    assert tokens.expires_in == 900
    claims = auth.tokens.verify(tokens.access_token)
    assert (claims.user_id, claims.role) == (user.id, Role.USER)


async def test_register_stores_the_email_trimmed_and_lower_cased(auth: Harness) -> None:
    user, _ = await auth.service.register("  Ada.Lovelace@Example.COM ", PASSWORD, "Ada")

    assert user.email == "ada.lovelace@example.com"


async def test_register_rejects_taken_email_case_insensitively(auth: Harness) -> None:
    await auth.service.register("ada@example.com", PASSWORD, "Ada")

    with pytest.raises(EmailTaken) as raised:
        await auth.service.register("ADA@Example.com", PASSWORD, "Another Ada")

    assert raised.value.status_code == grpc.StatusCode.ALREADY_EXISTS
    assert len(auth.store.data.users) == 1


async def test_register_emits_user_registered_with_the_trimmed_name(auth: Harness) -> None:
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "  Ada Lovelace  ")

    [event] = auth.store.events_of(USER_REGISTERED)
    assert event.subject == user.id
    assert (event.payload.user_id, event.payload.email, event.payload.name) == (
        user.id,
        "ada@example.com",
        "Ada Lovelace",
    )


async def test_register_stores_a_hash_not_the_password(auth: Harness) -> None:
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    assert auth.store.data.users[user.id].password_hash != PASSWORD


@pytest.mark.parametrize(
    ("email", "password", "name", "field"),
    [
        ("not-an-email", PASSWORD, "Ada", "email"),
        ("ada@localhost", PASSWORD, "Ada", "email"),
        ("ada@example.com", "short", "Ada", "password"),
        ("ada@example.com", "x" * 129, "Ada", "password"),
        ("ada@example.com", "ADA@example.com", "Ada", "password"),
        ("ada@example.com", PASSWORD, "   ", "name"),
        ("ada@example.com", PASSWORD, "x" * 101, "name"),
    ],
)
async def test_register_rejects_invalid_input_naming_the_field(
    auth: Harness, email: str, password: str, name: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await auth.service.register(email, password, name)

    assert [error.loc for error in raised.value.errors] == [("body", field)]
    assert auth.store.data.users == {}


async def test_login_with_right_password_opens_a_new_session(auth: Harness) -> None:
    await auth.service.register("ada@example.com", PASSWORD, "Ada")

    tokens = await auth.service.login(" ADA@example.com", PASSWORD)

    claims = auth.tokens.verify(tokens.access_token)
    assert len(auth.store.data.sessions) == 2
    assert claims.session_id in auth.store.data.sessions


async def test_wrong_password_and_unknown_email_give_same_error(auth: Harness) -> None:
    await auth.service.register("ada@example.com", PASSWORD, "Ada")
    await auth.service.start()

    with pytest.raises(WrongCredentials) as wrong_password:
        await auth.service.login("ada@example.com", "not the password")
    with pytest.raises(WrongCredentials) as unknown_email:
        await auth.service.login("nobody@example.com", PASSWORD)

    assert wrong_password.value.message == unknown_email.value.message == "wrong email or password"
    assert wrong_password.value.status_code == grpc.StatusCode.UNAUTHENTICATED


async def test_login_with_unknown_email_still_verifies_a_hash(auth: Harness) -> None:
    await auth.service.start()

    with pytest.raises(WrongCredentials):
        await auth.service.login("nobody@example.com", PASSWORD)

    assert len(auth.passwords.verified) == 1


async def test_deactivated_user_with_right_password_is_permission_denied(auth: Harness) -> None:
    user = await _user_deactivated_by_an_admin(auth)

    with pytest.raises(AccountDeactivated) as raised:
        await auth.service.login(user, PASSWORD)

    assert raised.value.status_code == grpc.StatusCode.PERMISSION_DENIED


async def test_deactivated_user_with_wrong_password_gets_wrong_credentials(auth: Harness) -> None:
    user = await _user_deactivated_by_an_admin(auth)

    with pytest.raises(WrongCredentials):
        await auth.service.login(user, "not the password")


async def test_password_rehashed_when_parameters_rise(auth: Harness) -> None:
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    auth.passwords.params = "m=65536,t=3"

    await auth.service.login("ada@example.com", PASSWORD)

    assert auth.store.data.users[user.id].password_hash.startswith("m=65536,t=3$")
    await auth.service.login("ada@example.com", PASSWORD)


async def test_password_kept_when_parameters_are_current(auth: Harness) -> None:
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    stored = auth.store.data.users[user.id].password_hash

    await auth.service.login("ada@example.com", PASSWORD)

    assert auth.store.data.users[user.id].password_hash == stored


async def test_absurdly_long_password_is_wrong_without_hashing(auth: Harness) -> None:
    await auth.service.register("ada@example.com", PASSWORD, "Ada")

    with pytest.raises(WrongCredentials):
        await auth.service.login("ada@example.com", "x" * 5000)

    assert auth.passwords.verified == []


async def test_get_me_returns_the_callers_account(auth: Harness) -> None:
    user, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    assert await auth.service.get_me(actor_of(auth, tokens)) == user


async def test_get_me_of_a_deleted_account_is_unauthenticated(auth: Harness) -> None:
    user, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    actor = actor_of(auth, tokens)
    await auth.service.delete_user(actor, user.id)

    with pytest.raises(AccountGone):
        await auth.service.get_me(actor)


async def test_get_user_of_someone_else_requires_an_admin(auth: Harness) -> None:
    _, ada = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    bob, _ = await auth.service.register("bob@example.com", PASSWORD, "Bob")

    with pytest.raises(NotAllowed):
        await auth.service.get_user(actor_of(auth, ada), bob.id)


async def test_admin_gets_any_user_and_not_found_for_unknown_ids(auth: Harness) -> None:
    admin = await _admin_actor(auth)
    bob, _ = await auth.service.register("bob@example.com", PASSWORD, "Bob")

    assert await auth.service.get_user(admin, bob.id) == bob
    with pytest.raises(UserNotFound):
        await auth.service.get_user(admin, "f" * 24)


async def _admin_actor(auth: Harness) -> Actor:
    await auth.service.ensure_admin("root@example.com", PASSWORD, require_password_match=True)
    return actor_of(auth, await auth.service.login("root@example.com", PASSWORD))


async def _user_deactivated_by_an_admin(auth: Harness) -> str:
    admin = await _admin_actor(auth)
    user, _ = await auth.service.register("ada@example.com", PASSWORD, "Ada")
    await auth.service.update_user(admin, user.id, StandingChange(active=False))
    return user.email
