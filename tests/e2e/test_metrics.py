"""Every process of the suite exposes Prometheus metrics that parse, with the families that
compose/'s dashboards and alert rules read (docs/observability.md).

Each gateway serves /metrics on its HTTP port, each service on its METRICS_PORT; the ports
come from the runner's localrun.json. The families are checked by name (a labelled family
with no series yet still has its HELP and TYPE lines); the RED series are checked to move
with real traffic.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from taskmesh_localrun.options import SERVICES
from taskmesh_localrun.testing import LocalRun, eventually

pytestmark = pytest.mark.e2e

GATEWAYS = ("gateway-1", "gateway-2")
HEALTH_SERVICE = "grpc.health.v1.Health"

# Family names as the parser gives them: a counter's without its `_total`.
GRPC_SERVER = frozenset({"grpc_server_handled", "grpc_server_handling_seconds"})
GRPC_CLIENT = frozenset({"grpc_client_handled", "grpc_client_handling_seconds"})
PROCESS = frozenset({"process_resident_memory_bytes", "process_cpu_seconds"})
OUTBOX = frozenset(
    {"taskmesh_outbox_backlog", "taskmesh_events_published", "taskmesh_event_publish_failures"}
)
CONSUMER = frozenset(
    {
        "taskmesh_events_consumed",
        "taskmesh_event_consumer_lag_seconds",
        "taskmesh_event_dead_letters",
    }
)
EXPECTED_FAMILIES: dict[str, frozenset[str]] = {
    "gateway": PROCESS
    | GRPC_CLIENT
    | {
        "http_requests",
        "http_request_duration_seconds",
        "taskmesh_websocket_connections",
        "taskmesh_cache_requests",
        "taskmesh_rate_limited",
        "taskmesh_request_records",
        "taskmesh_request_records_buffered",
    },
    "auth": PROCESS | GRPC_SERVER | GRPC_CLIENT | OUTBOX,
    "users": PROCESS | GRPC_SERVER | GRPC_CLIENT | OUTBOX | CONSUMER,
    "tasks": PROCESS | GRPC_SERVER | GRPC_CLIENT | OUTBOX | CONSUMER,
    "notifications": PROCESS
    | GRPC_SERVER
    | OUTBOX
    | CONSUMER
    | {"taskmesh_emails_sent", "taskmesh_email_failures", "taskmesh_notifications_created"},
    "analytics": PROCESS | GRPC_SERVER | CONSUMER,
}
"""What each deployable must expose: RED metrics of what it serves and calls, and the event
metrics of its outbox (auth, users, tasks, notifications publish) and its consumer (users,
tasks, notifications, analytics consume)."""


def metrics_url(suite: LocalRun, process: str) -> str:
    """Where a process of the suite serves /metrics."""
    ports = suite.process_info(process)["ports"]
    port = ports["http"] if process in GATEWAYS else ports["metrics"]
    return f"http://127.0.0.1:{port}/metrics"


def scrape(suite: LocalRun, process: str) -> dict[str, Metric]:
    """A process's metric families by name, parsed as Prometheus parses them."""
    response = httpx.get(metrics_url(suite, process), timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def sample_value(families: dict[str, Metric], sample_name: str, **labels: str) -> float:
    """The sum of a series' samples whose labels include `labels` (0 when there are none)."""
    return sum(
        sample.value
        for family in families.values()
        for sample in family.samples
        if sample.name == sample_name and labels.items() <= sample.labels.items()
    )


@pytest.mark.parametrize("process", [*GATEWAYS, *SERVICES])
def test_process_exposes_parseable_metrics_with_its_families(suite: LocalRun, process: str) -> None:
    families = scrape(suite, process)

    expected = EXPECTED_FAMILIES["gateway" if process in GATEWAYS else process]
    assert sorted(expected - set(families)) == []


@pytest.mark.parametrize("service", SERVICES)
def test_service_counts_the_health_checks_it_answered(suite: LocalRun, service: str) -> None:
    # The runner and the gateways' readiness checked every service's health before the suite
    # was ready, so each has answered Check with OK at least once.
    families = scrape(suite, service)

    handled = sample_value(
        families,
        "grpc_server_handled_total",
        grpc_service=HEALTH_SERVICE,
        grpc_method="Check",
        grpc_code="OK",
    )
    assert handled >= 1
    assert (
        sample_value(
            families,
            "grpc_server_handling_seconds_count",
            grpc_service=HEALTH_SERVICE,
            grpc_method="Check",
        )
        >= handled
    )


def _readyz_answers(suite: LocalRun) -> float:
    return sum(
        sample_value(
            scrape(suite, gateway),
            "http_requests_total",
            route="/readyz",
            method="GET",
            status="200",
        )
        for gateway in GATEWAYS
    )


def test_a_request_through_traefik_is_counted_and_timed_by_route(suite: LocalRun) -> None:
    before = _readyz_answers(suite)

    response = httpx.get(f"{suite.url}/readyz", timeout=5)

    assert response.status_code == 200
    # The middleware counts a request once its response has gone out.
    assert eventually(lambda: _readyz_answers(suite) == before + 1, timeout_s=5)
    timed = sum(
        sample_value(
            scrape(suite, gateway),
            "http_request_duration_seconds_count",
            route="/readyz",
            method="GET",
        )
        for gateway in GATEWAYS
    )
    assert timed >= before + 1
