from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError
from taskmesh_chassis.service import load_settings
from taskmesh_chassis.settings import GrpcServiceSettings, Port


class ExampleSettings(GrpcServiceSettings):
    service_name: ClassVar[str] = "example"
    grpc_port: Port = 50099
    metrics_port: Port = 9199
    api_key: SecretStr = SecretStr("changeme")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["ENVIRONMENT", "GRPC_PORT", "API_KEY", "API_KEY_FILE", "MONGODB_URL", "LOG_LEVEL"]:
        monkeypatch.delenv(name, raising=False)


def test_defaults_follow_the_process_contract() -> None:
    settings = ExampleSettings()
    assert settings.environment == "development"
    assert (settings.log_level, settings.log_format) == ("INFO", "json")
    assert (settings.grpc_host, settings.grpc_port, settings.metrics_port) == (
        "127.0.0.1",
        50099,
        9199,
    )
    assert settings.mongodb_url.get_secret_value() == "mongodb://127.0.0.1:27027/"
    assert settings.redis_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert settings.amqp_url.get_secret_value() == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.shutdown_grace_s == 10.0


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_PORT", "6000")
    monkeypatch.setenv("MONGODB_URL", "mongodb://db.example:27017/")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = ExampleSettings()
    assert settings.grpc_port == 6000
    assert settings.mongodb_url.get_secret_value() == "mongodb://db.example:27017/"
    assert settings.log_level == "DEBUG"


def test_database_is_prefix_plus_service_name() -> None:
    assert ExampleSettings(mongodb_database_prefix="tm_").mongodb_database == "tm_example"


def test_file_secret_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_file = tmp_path / "api_key"
    secret_file.write_text("s3cr3t-from-file\n")
    monkeypatch.setenv("API_KEY_FILE", str(secret_file))
    assert ExampleSettings().api_key.get_secret_value() == "s3cr3t-from-file"


def test_any_field_may_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    port_file.write_text("6001\r\n")
    monkeypatch.setenv("GRPC_PORT_FILE", str(port_file))
    assert ExampleSettings().grpc_port == 6001


def test_value_given_both_directly_and_as_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "api_key"
    secret_file.write_text("from-file")
    monkeypatch.setenv("API_KEY", "from-env")
    monkeypatch.setenv("API_KEY_FILE", str(secret_file))
    with pytest.raises(SettingsError, match="API_KEY and API_KEY_FILE are both set"):
        ExampleSettings()


def test_unreadable_file_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("API_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="API_KEY_FILE: cannot read"):
        ExampleSettings()


@pytest.mark.parametrize("placeholder", ["changeme", "", "Secret", " password ", "dev"])
def test_placeholder_secret_refused_in_production(placeholder: str) -> None:
    with pytest.raises(ValidationError, match="API_KEY must be set to a real secret"):
        ExampleSettings(environment="production", api_key=SecretStr(placeholder))


def test_placeholder_secret_refused_in_test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "test")
    with pytest.raises(ValidationError, match="API_KEY"):
        ExampleSettings()


def test_placeholder_secret_accepted_in_development() -> None:
    assert ExampleSettings().api_key.get_secret_value() == "changeme"


def test_real_secret_accepted_in_production() -> None:
    settings = ExampleSettings(environment="production", api_key=SecretStr("k7#Lq9-real"))
    assert settings.environment == "production"


def test_secret_values_are_masked_when_settings_are_printed() -> None:
    settings = ExampleSettings(api_key=SecretStr("k7#Lq9-real"))
    assert "k7#Lq9-real" not in repr(settings)
    assert "guest:guest" not in repr(settings)


def test_invalid_configuration_exits_naming_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("API_KEY", "changeme")
    monkeypatch.setenv("GRPC_PORT", "70000")
    with pytest.raises(SystemExit) as exited:
        load_settings(ExampleSettings)
    assert exited.value.code == 2
    message = capsys.readouterr().err
    assert "GRPC_PORT" in message
    assert "70000" not in message
