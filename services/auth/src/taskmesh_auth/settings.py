"""Configuration of the auth service (docs/processes.md, docs/auth.md)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from taskmesh_chassis.events import EventSettings
from taskmesh_chassis.settings import GrpcServiceSettings, Port

# OWASP's minimum for argon2id: 19 MiB of memory, 2 iterations, 1 degree of parallelism.
MIN_PASSWORD_HASH_MEMORY_KIB = 19_456
MIN_PASSWORD_HASH_TIME_COST = 2


class AuthSettings(GrpcServiceSettings, EventSettings):
    """Settings of the auth service: the common ones, its ports, tokens, keys, passwords, users."""

    service_name: ClassVar[str] = "auth"

    grpc_port: Port = 50051
    metrics_port: Port = 9101

    # JWT_ISSUER and JWT_AUDIENCE come from the chassis (IdentitySettings): auth signs with
    # the values every verifier checks.
    # PEM (PKCS#8) of the Ed25519 private key that signs access tokens.
    jwt_signing_key: SecretStr | None = None
    # PEMs of retired public keys, concatenated: still published until their tokens expire.
    jwt_previous_public_keys: str = ""
    # Where development generates (once) and then reuses its signing key.
    dev_signing_key_path: Path = Path(".data/auth/dev-signing-key.pem")

    access_token_ttl_s: int = Field(default=900, ge=1, le=86_400)
    refresh_token_ttl_s: int = Field(default=2_592_000, ge=60)
    reset_token_ttl_s: int = Field(default=3600, ge=60, le=86_400)

    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None

    password_hash_memory_kib: int = Field(
        default=MIN_PASSWORD_HASH_MEMORY_KIB, ge=MIN_PASSWORD_HASH_MEMORY_KIB
    )
    password_hash_time_cost: int = Field(
        default=MIN_PASSWORD_HASH_TIME_COST, ge=MIN_PASSWORD_HASH_TIME_COST
    )

    redis_timeout_s: float = Field(default=2.0, gt=0)

    # Where register asks for the new account's profile, and how long it waits for it.
    users_grpc_target: str = Field(default="127.0.0.1:50052", min_length=1)
    profile_create_timeout_s: float = Field(default=1.0, gt=0, le=30)

    @field_validator(
        "jwt_signing_key", "bootstrap_admin_email", "bootstrap_admin_password", mode="before"
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `make` and compose pass unset variables through as empty strings.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _signing_key_outside_development(self) -> Self:
        if self.environment != "development" and self.jwt_signing_key is None:
            raise ValueError(
                f"JWT_SIGNING_KEY (or JWT_SIGNING_KEY_FILE) must be set when "
                f"ENVIRONMENT={self.environment}; only development generates a key"
            )
        return self

    @model_validator(mode="after")
    def _bootstrap_admin_complete(self) -> Self:
        if (self.bootstrap_admin_email is None) != (self.bootstrap_admin_password is None):
            raise ValueError(
                "BOOTSTRAP_ADMIN_EMAIL and BOOTSTRAP_ADMIN_PASSWORD must be set together"
            )
        return self
