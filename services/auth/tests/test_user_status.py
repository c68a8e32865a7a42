"""GetUserStatus: what other services may learn of an account, over fakes of the adapters."""

from __future__ import annotations

from taskmesh_auth.domain import Actor, Role, StandingChange

from .fakes import Harness, actor_of, make_harness

PASSWORD = "correct horse battery staple"


async def registered(auth: Harness, email: str) -> tuple[str, Actor]:
    user, tokens = await auth.service.register(email, PASSWORD, "Someone")
    return user.id, actor_of(auth, tokens)


async def test_an_active_account_exists_and_is_active() -> None:
    auth = make_harness()
    user_id, _ = await registered(auth, "ada@example.com")
    _, asker = await registered(auth, "bob@example.com")

    status = await auth.service.get_user_status(asker, user_id)

    assert (status.user_id, status.exists, status.active) == (user_id, True, True)


async def test_a_deactivated_account_exists_but_is_not_active() -> None:
    auth = make_harness()
    await auth.service.ensure_admin("root@example.com", PASSWORD, require_password_match=True)
    admin = actor_of(auth, await auth.service.login("root@example.com", PASSWORD))
    user_id, _ = await registered(auth, "ada@example.com")
    await auth.service.update_user(admin, user_id, StandingChange(active=False))

    status = await auth.service.get_user_status(admin, user_id)

    assert (status.exists, status.active) == (True, False)
    assert admin.role is Role.ADMIN


async def test_an_unknown_or_malformed_id_does_not_exist() -> None:
    auth = make_harness()
    _, asker = await registered(auth, "ada@example.com")

    for user_id in ["65f0c0ffee0000000000aaaa", "not-an-id", ""]:
        status = await auth.service.get_user_status(asker, user_id)
        assert (status.exists, status.active) == (False, False)
