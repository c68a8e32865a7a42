"""Traefik's generated configuration."""

from __future__ import annotations

import json
from pathlib import Path

from taskmesh_localrun import traefik


def load(path: Path) -> dict[str, object]:
    # The files are JSON behind a YAML comment line.
    text = path.read_text()
    assert text.startswith("#")
    return json.loads(text.split("\n", 1)[1])  # type: ignore[no-any-return]


def write(tmp_path: Path) -> Path:
    return traefik.write_configs(
        tmp_path / "traefik",
        public_port=18000,
        api_port=18080,
        gateway_urls=["http://127.0.0.1:18001", "http://127.0.0.1:18002"],
        log_dir=tmp_path / "logs",
    )


def test_dynamic_config_balances_over_both_gateways_with_a_health_check(tmp_path: Path) -> None:
    write(tmp_path)
    dynamic = load(tmp_path / "traefik" / "dynamic.yaml")

    balancer = dynamic["http"]["services"]["gateways"]["loadBalancer"]  # type: ignore[index]
    assert balancer["servers"] == [
        {"url": "http://127.0.0.1:18001"},
        {"url": "http://127.0.0.1:18002"},
    ]
    assert balancer["healthCheck"]["path"] == "/healthz"
    assert balancer["healthCheck"]["interval"] == "2s"
    router = dynamic["http"]["routers"]["taskmesh"]  # type: ignore[index]
    assert router == {"entryPoints": ["web"], "rule": "PathPrefix(`/`)", "service": "gateways"}


def test_the_websocket_route_is_kept_out_of_the_access_log(tmp_path: Path) -> None:
    write(tmp_path)
    dynamic = load(tmp_path / "traefik" / "dynamic.yaml")

    router = dynamic["http"]["routers"]["taskmesh-ws"]  # type: ignore[index]
    assert router == {
        "entryPoints": ["web"],
        "rule": "Path(`/api/v1/ws`)",
        "service": "gateways",
        "observability": {"accessLogs": False},
    }


def test_static_config_listens_locally_and_phones_nobody(tmp_path: Path) -> None:
    static = load(write(tmp_path))

    assert static["entryPoints"]["web"]["address"] == "127.0.0.1:18000"  # type: ignore[index]
    assert static["entryPoints"]["traefik"]["address"] == "127.0.0.1:18080"  # type: ignore[index]
    assert static["ping"] == {"entryPoint": "traefik"}
    assert static["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}


def test_static_config_points_at_the_dynamic_file_and_json_access_log(tmp_path: Path) -> None:
    static = load(write(tmp_path))

    provider = static["providers"]["file"]  # type: ignore[index]
    assert provider["filename"] == str(tmp_path / "traefik" / "dynamic.yaml")
    access_log = static["accessLog"]  # type: ignore[index]
    assert access_log["filePath"] == str(tmp_path / "logs" / "traefik-access.log")
    assert access_log["format"] == "json"
