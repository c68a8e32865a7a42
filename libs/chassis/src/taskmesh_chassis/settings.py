"""Process configuration: environment variables, each also readable from a `<NAME>_FILE`.

Every process builds one settings object at start-up and passes it on; nothing else reads
`os.environ`. Variable names are the field names in upper case (docs/processes.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

Port = Annotated[int, Field(ge=0, le=65535)]
Environment = Literal["development", "test", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["json", "console"]

# Compared after stripping and lower-casing; outside development these are refused for any
# SecretStr field, so a copied example config cannot reach a real deployment.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "change-this",
        "secret",
        "password",
        "dev",
        "test",
        "admin",
        "default",
        "example",
        "todo",
        "xxx",
    }
)


class FileSettingsSource(PydanticBaseSettingsSource):
    """Reads `<NAME>_FILE` variables: each names a file holding the value of `<NAME>`.

    pydantic-settings' own `secrets_dir` reads one directory of files named after the
    fields; Docker and Kubernetes secrets are instead mounted anywhere and pointed to by
    `<NAME>_FILE`, so this source follows that convention.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(settings_cls)
        source = os.environ if environ is None else environ
        # Upper-cased because pydantic-settings matches variable names case-insensitively.
        self._environ = {name.upper(): value for name, value in source.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Not used: `__call__` reads every field at once."""
        raise NotImplementedError

    def __call__(self) -> dict[str, Any]:
        """Return the values of the fields given as `<NAME>_FILE`."""
        prefix = self.config.get("env_prefix", "")
        values: dict[str, Any] = {}
        for field_name in self.settings_cls.model_fields:
            name = f"{prefix}{field_name}".upper()
            path = self._environ.get(f"{name}_FILE")
            if path is None:
                continue
            if name in self._environ:
                raise SettingsError(f"{name} and {name}_FILE are both set; set only one of them")
            values[field_name] = _read_value_file(name, Path(path))
        return values


def _read_value_file(name: str, path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SettingsError(f"{name}_FILE: cannot read {path}: {error.strerror}") from None
    # `echo value > file` and most editors add one line ending; it is never part of a value.
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


class BaseServiceSettings(BaseSettings):
    """Settings every taskmesh process reads."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    environment: Environment = "development"
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "json"
    # OpenTelemetry's standard variables: spans are exported over OTLP/gRPC when either is
    # set (the traces one wins); the exporter reads the other OTEL_* variables itself.
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_traces_endpoint: str = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read constructor arguments, then the environment, then `<NAME>_FILE` files."""
        return (init_settings, env_settings, FileSettingsSource(settings_cls))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.environment == "development":
            return self
        prefix = self.model_config.get("env_prefix", "")
        placeholders = [
            f"{prefix}{name}".upper()
            for name, value in self
            if isinstance(value, SecretStr)
            and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS
        ]
        if placeholders:
            raise ValueError(
                f"{', '.join(placeholders)} must be set to a real secret when "
                f"ENVIRONMENT={self.environment} (placeholder values are only accepted "
                "in development)"
            )
        return self


class IdentitySettings(BaseServiceSettings):
    """What a process needs to verify access tokens: who issues them, for whom, where the keys are.

    The gateway and every gRPC service read these; the auth service signs with the same issuer
    and audience.
    """

    jwt_issuer: str = Field(default="taskmesh", min_length=1)
    jwt_audience: str = Field(default="taskmesh-api", min_length=1)
    jwt_leeway_s: float = Field(default=5.0, ge=0, le=60)
    auth_grpc_target: str = "127.0.0.1:50051"


class GrpcServiceSettings(IdentitySettings):
    """Settings every gRPC service reads; a service subclasses it with its name and ports."""

    service_name: ClassVar[str]

    grpc_host: str = "127.0.0.1"
    grpc_port: Port
    metrics_port: Port
    # URLs are secrets because they may carry credentials (mongodb://user:password@...).
    mongodb_url: SecretStr = SecretStr("mongodb://127.0.0.1:27027/")
    mongodb_database_prefix: str = "taskmesh_"
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    shutdown_grace_s: float = Field(default=10.0, ge=0)

    @property
    def mongodb_database(self) -> str:
        """The name of this service's own database, e.g. `taskmesh_tasks`."""
        return f"{self.mongodb_database_prefix}{self.service_name}"
