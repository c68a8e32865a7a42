"""The auth service's configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from taskmesh_auth.settings import AuthSettings


def test_defaults_match_the_contract() -> None:
    settings = AuthSettings()

    assert (settings.jwt_issuer, settings.jwt_audience) == ("taskmesh", "taskmesh-api")
    assert (settings.access_token_ttl_s, settings.refresh_token_ttl_s) == (900, 2_592_000)
    assert settings.reset_token_ttl_s == 3600
    assert str(settings.dev_signing_key_path) == ".data/auth/dev-signing-key.pem"


def test_outside_development_a_missing_signing_key_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="JWT_SIGNING_KEY"):
        AuthSettings(environment="production")


def test_blank_variables_count_as_unset() -> None:
    settings = AuthSettings(
        jwt_signing_key="", bootstrap_admin_email=" ", bootstrap_admin_password=""
    )

    assert settings.jwt_signing_key is None
    assert settings.bootstrap_admin_email is None


def test_bootstrap_admin_needs_both_email_and_password() -> None:
    with pytest.raises(ValidationError, match="BOOTSTRAP_ADMIN_PASSWORD"):
        AuthSettings(bootstrap_admin_email="root@example.com")


def test_password_hash_parameters_cannot_go_below_owasp() -> None:
    with pytest.raises(ValidationError):
        AuthSettings(password_hash_memory_kib=8192)
    with pytest.raises(ValidationError):
        AuthSettings(password_hash_time_cost=1)


def test_placeholder_bootstrap_password_is_refused_outside_development() -> None:
    with pytest.raises(ValidationError, match="BOOTSTRAP_ADMIN_PASSWORD"):
        AuthSettings(
            environment="production",
            jwt_signing_key="a real key",
            bootstrap_admin_email="root@example.com",
            bootstrap_admin_password="admin",
        )


def test_register_asks_the_local_users_service_within_a_second_by_default() -> None:
    settings = AuthSettings()

    assert (settings.users_grpc_target, settings.profile_create_timeout_s) == (
        "127.0.0.1:50052",
        1.0,
    )


def test_users_target_and_profile_deadline_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USERS_GRPC_TARGET", "users.taskmesh.svc:50052")
    monkeypatch.setenv("PROFILE_CREATE_TIMEOUT_S", "0.5")

    settings = AuthSettings()

    assert (settings.users_grpc_target, settings.profile_create_timeout_s) == (
        "users.taskmesh.svc:50052",
        0.5,
    )


@pytest.mark.parametrize("timeout_s", [0, -1, 31])
def test_the_profile_deadline_is_positive_and_short(timeout_s: float) -> None:
    with pytest.raises(ValidationError):
        AuthSettings(profile_create_timeout_s=timeout_s)
