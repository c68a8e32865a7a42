"""`python -m taskmesh_auth.admin`: create or promote an admin from the command line."""

from __future__ import annotations

import pytest
from taskmesh_auth.admin import PASSWORD_VARIABLE, ensure_admin_account, main
from taskmesh_auth.domain import Role
from taskmesh_auth.main import build_auth_service, create_redis
from taskmesh_auth.service import AdminOutcome
from taskmesh_auth.settings import AuthSettings
from taskmesh_auth.tokens import load_key_store
from taskmesh_chassis.events import Outbox
from taskmesh_chassis.mongo import create_mongo_client

from .fakes import FakeProfileCreator

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"


def no_prompt() -> str:
    raise AssertionError("the command must not prompt here")


async def test_creates_an_admin_with_the_password_from_the_environment(
    auth_settings: AuthSettings,
) -> None:
    outcome = await ensure_admin_account(auth_settings, "Boss@example.com", PASSWORD, no_prompt)

    assert outcome is AdminOutcome.CREATED
    again = await ensure_admin_account(auth_settings, "boss@example.com", None, no_prompt)
    assert again is AdminOutcome.UNCHANGED


async def test_prompts_for_a_password_only_when_creating(auth_settings: AuthSettings) -> None:
    prompted: list[str] = []

    def prompt() -> str:
        prompted.append("asked")
        return PASSWORD

    outcome = await ensure_admin_account(auth_settings, "new@example.com", None, prompt)

    assert (outcome, prompted) == (AdminOutcome.CREATED, ["asked"])


async def test_promotes_an_existing_account_keeping_its_password(
    auth_settings: AuthSettings,
) -> None:
    mongo = create_mongo_client(auth_settings.mongodb_url.get_secret_value(), appname="t")
    redis = create_redis(auth_settings)
    database = mongo[auth_settings.mongodb_database]
    service, store = build_auth_service(
        auth_settings,
        database,
        redis,
        load_key_store(auth_settings),
        Outbox(database, source="t"),
        FakeProfileCreator(),
    )
    try:
        await service.register("ada@example.com", PASSWORD, "Ada")

        outcome = await ensure_admin_account(auth_settings, "ada@example.com", None, no_prompt)

        user = await store.user_by_email("ada@example.com")
        assert outcome is AdminOutcome.PROMOTED
        assert user is not None
        assert user.role is Role.ADMIN
        await service.login("ada@example.com", PASSWORD)
    finally:
        await redis.aclose()
        await mongo.close()


def test_main_reports_a_too_short_password_and_fails(
    auth_settings: AuthSettings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "MONGODB_URL": auth_settings.mongodb_url.get_secret_value(),
        "MONGODB_DATABASE_PREFIX": auth_settings.mongodb_database_prefix,
        "REDIS_URL": auth_settings.redis_url.get_secret_value(),
        "JWT_SIGNING_KEY": auth_settings.jwt_signing_key.get_secret_value(),  # type: ignore[union-attr]
    }.items():
        monkeypatch.setenv(name, value)

    status = main(["--email", "x@example.com"], {PASSWORD_VARIABLE: "short"}, no_prompt)

    assert status == 1
    assert "password" in capsys.readouterr().err
