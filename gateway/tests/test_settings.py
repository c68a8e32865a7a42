"""The gateway reads its configuration from the environment as docs/processes.md lists it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from taskmesh_gateway.settings import GatewaySettings


def test_defaults_need_no_configuration() -> None:
    settings = GatewaySettings()

    assert (settings.gateway_host, settings.gateway_port) == ("127.0.0.1", 8001)
    assert settings.tasks_grpc_target == "127.0.0.1:50053"
    assert settings.cors_origins == []
    assert settings.trusted_tls is False


def test_cors_origins_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://app.example, https://admin.example/")

    assert GatewaySettings().cors_origins == ["https://app.example", "https://admin.example"]


def test_instance_name_defaults_to_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "8002")

    assert GatewaySettings().instance_name == f"{socket.gethostname()}:8002"


def test_amqp_url_may_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "amqp_url"
    secret.write_text("amqp://gateway:s3cret@broker:5672/\n")
    monkeypatch.setenv("AMQP_URL_FILE", str(secret))

    assert GatewaySettings().amqp_url.get_secret_value() == "amqp://gateway:s3cret@broker:5672/"
