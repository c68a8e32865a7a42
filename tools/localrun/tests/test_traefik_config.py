"""Traefik's generated configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from taskmesh_localrun import traefik


def load(path: Path) -> dict[str, object]:
    # The files are JSON behind a YAML comment line.
    text = path.read_text()
    assert text.startswith("#")
    return json.loads(text.split("\n", 1)[1])  # type: ignore[no-any-return]


WEB_URL = "http://127.0.0.1:18090"


def write(tmp_path: Path, otlp_endpoint: str | None = None, web_url: str | None = WEB_URL) -> Path:
    return traefik.write_configs(
        tmp_path / "traefik",
        public_port=18000,
        api_port=18080,
        gateway_urls=["http://127.0.0.1:18001", "http://127.0.0.1:18002"],
        web_url=web_url,
        log_dir=tmp_path / "logs",
        otlp_endpoint=otlp_endpoint,
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


def test_the_gateways_get_the_api_docs_health_metrics_and_well_known_paths(
    tmp_path: Path,
) -> None:
    write(tmp_path)
    dynamic = load(tmp_path / "traefik" / "dynamic.yaml")

    router = dynamic["http"]["routers"]["taskmesh"]  # type: ignore[index]
    assert router == {
        "entryPoints": ["web"],
        "rule": "PathPrefix(`/api/`) || PathPrefix(`/docs`) || Path(`/healthz`) "
        "|| Path(`/readyz`) || Path(`/metrics`) || PathPrefix(`/.well-known/`)",
        "priority": 100,
        "service": "gateways",
    }


def test_the_web_app_gets_every_other_path_at_the_lowest_priority(tmp_path: Path) -> None:
    write(tmp_path)
    dynamic = load(tmp_path / "traefik" / "dynamic.yaml")

    routers = dynamic["http"]["routers"]  # type: ignore[index]
    assert routers["taskmesh-web"] == {
        "entryPoints": ["web"],
        "rule": "PathPrefix(`/`)",
        "priority": 1,
        "service": "web",
    }
    assert min(router["priority"] for router in routers.values()) == 1
    assert [router["priority"] for router in routers.values()].count(1) == 1
    web = dynamic["http"]["services"]["web"]  # type: ignore[index]
    assert web == {"loadBalancer": {"servers": [{"url": WEB_URL}]}}


def test_without_the_web_app_only_the_api_paths_are_routed(tmp_path: Path) -> None:
    write(tmp_path, web_url=None)
    dynamic = load(tmp_path / "traefik" / "dynamic.yaml")

    assert set(dynamic["http"]["routers"]) == {"taskmesh", "taskmesh-ws"}  # type: ignore[index]
    assert set(dynamic["http"]["services"]) == {"gateways"}  # type: ignore[index]


def test_the_websocket_route_is_kept_out_of_the_access_log(tmp_path: Path) -> None:
    write(tmp_path)
    dynamic = load(tmp_path / "traefik" / "dynamic.yaml")

    routers = dynamic["http"]["routers"]  # type: ignore[index]
    assert routers["taskmesh-ws"] == {
        "entryPoints": ["web"],
        "rule": "Path(`/api/v1/ws`)",
        "priority": 1000,
        "service": "gateways",
        "observability": {"accessLogs": False},
    }
    # It must win over the gateways' router, whose rule matches its path too.
    assert routers["taskmesh-ws"]["priority"] > routers["taskmesh"]["priority"]


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


def test_without_an_otlp_endpoint_traefik_does_not_trace(tmp_path: Path) -> None:
    static = load(write(tmp_path))

    assert "tracing" not in static


def test_with_an_otlp_endpoint_traefik_traces_every_request_over_otlp_grpc(
    tmp_path: Path,
) -> None:
    static = load(write(tmp_path, otlp_endpoint="http://127.0.0.1:4317"))

    assert static["tracing"] == {
        "serviceName": "taskmesh-traefik",
        "sampleRate": 1.0,
        "resourceAttributes": {"service.namespace": "taskmesh"},
        "otlp": {"grpc": {"endpoint": "127.0.0.1:4317", "insecure": True}},
    }


@pytest.mark.parametrize(
    ("endpoint", "address", "insecure"),
    [
        ("https://collector.example:4317", "collector.example:4317", False),
        ("http://collector:4317/", "collector:4317", True),
        ("collector:4317", "collector:4317", True),
    ],
)
def test_the_endpoint_url_says_where_and_whether_over_tls(
    endpoint: str, address: str, insecure: bool
) -> None:
    grpc_exporter = traefik.tracing_config(endpoint)["otlp"]["grpc"]
    assert grpc_exporter == {"endpoint": address, "insecure": insecure}


@pytest.mark.parametrize("endpoint", ["http://", "ftp://collector:4317", "http://collector"])
def test_an_endpoint_that_is_no_otlp_grpc_address_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match="http"):
        traefik.tracing_config(endpoint)


def test_the_endpoint_comes_from_the_standard_variables() -> None:
    assert traefik.otlp_endpoint({}) is None
    assert traefik.otlp_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}) is None
    assert traefik.otlp_endpoint({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317"}) == (
        "http://a:4317"
    )
    both = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4317",
    }
    assert traefik.otlp_endpoint(both) == "http://b:4317"
