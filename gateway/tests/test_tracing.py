"""One server span per request, continuing the caller's trace into the gateway's gRPC calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import Message
from taskmesh_chassis.testing import (
    CapturedLogs,
    CapturedSpans,
    capture_logs,
    capture_spans,
    parent_id_hex,
    span_id_hex,
    trace_id_hex,
)
from taskmesh_gateway.clients import SERVICE_DESCRIPTORS
from taskmesh_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import HealthServers, LifespanClient

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
EDGE_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{EDGE_SPAN_ID}-01"


@pytest.fixture
def spans() -> CapturedSpans:
    return capture_spans()


@pytest.fixture
def logs() -> CapturedLogs:
    return capture_logs("gateway")


async def test_a_request_continues_the_traceparent_it_came_with(
    client: httpx.AsyncClient, spans: CapturedSpans, logs: CapturedLogs
) -> None:
    await client.get("/_probe/tasks/65f0c0ffee0000000000aaaa", headers={"traceparent": TRACEPARENT})

    [span] = spans.named("GET /_probe/tasks/{task_id}")
    assert span.kind == SpanKind.SERVER
    assert (trace_id_hex(span), parent_id_hex(span)) == (TRACE_ID, EDGE_SPAN_ID)
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/_probe/tasks/{task_id}"
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.path"] == "/_probe/tasks/65f0c0ffee0000000000aaaa"
    assert span.status.status_code == StatusCode.UNSET
    [line] = logs.events("http.request")
    assert (line["trace_id"], line["span_id"]) == (TRACE_ID, span_id_hex(span))


async def test_a_request_without_trace_context_starts_a_trace_named_in_its_log_line(
    client: httpx.AsyncClient, spans: CapturedSpans, logs: CapturedLogs
) -> None:
    await client.get("/_probe/notes", headers={"traceparent": "00-not-a-trace-01"})

    [span] = spans.named("GET /_probe/notes")
    assert parent_id_hex(span) is None
    [line] = logs.events("http.request")
    assert line["trace_id"] == trace_id_hex(span)


async def test_a_server_error_marks_the_span_and_a_miss_keeps_the_bare_method(
    client: httpx.AsyncClient, spans: CapturedSpans
) -> None:
    await client.get("/_probe/crash")
    await client.get("/no/such/route?access_token=secret")
    await client.request("BREW", "/_probe/notes")

    [crashed] = spans.named("GET /_probe/crash")
    assert crashed.status.status_code == StatusCode.ERROR
    [invented] = spans.named("OTHER /_probe/notes")
    assert invented.attributes is not None
    assert invented.attributes["http.request.method"] == "OTHER"
    [missed] = spans.named("GET")
    assert missed.attributes is not None
    assert missed.attributes["http.response.status_code"] == 404
    assert "http.route" not in missed.attributes
    assert all("secret" not in str(value) for value in missed.attributes.values())


async def test_a_probe_without_trace_context_is_not_traced_but_logged_with_ids(
    client: httpx.AsyncClient, spans: CapturedSpans, logs: CapturedLogs
) -> None:
    await client.get("/healthz")
    await client.get("/metrics")

    assert spans.finished() == []
    healthz, metrics = logs.events("http.request")
    assert healthz["trace_id"] != metrics["trace_id"]
    for line in (healthz, metrics):
        assert len(line["trace_id"]) == 32
        assert len(line["span_id"]) == 16


async def test_a_websocket_runs_in_one_span_named_after_its_route(
    app: FastAPI, spans: CapturedSpans
) -> None:
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/_probe/ws",
        "raw_path": b"/_probe/ws",
        "root_path": "",
        "query_string": b"access_token=secret",
        "headers": [(b"traceparent", TRACEPARENT.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("gateway", 80),
        "subprotocols": [],
    }
    incoming: list[Message] = [{"type": "websocket.connect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)

    assert {"type": "websocket.send", "text": "hello"} in [
        {key: message.get(key) for key in ("type", "text")} for message in sent
    ]
    [span] = spans.named("WEBSOCKET /_probe/ws")
    assert (trace_id_hex(span), parent_id_hex(span)) == (TRACE_ID, EDGE_SPAN_ID)
    assert span.attributes is not None
    assert all("secret" not in str(value) for value in span.attributes.values())


async def test_the_gateways_grpc_calls_are_client_spans_inside_the_request_span(
    settings: GatewaySettings,
    health_servers: HealthServers,
    all_services: list[str],
    started_gateway: LifespanClient,
) -> None:
    target, health = await health_servers.start(serving=all_services)
    every_service = {f"{name}_grpc_target": target for name in SERVICE_DESCRIPTORS}
    client = await started_gateway(settings.model_copy(update=every_service))
    spans = capture_spans()

    # Whether RabbitMQ is connected yet does not matter: the services are asked either way.
    await client.get("/readyz", headers={"traceparent": TRACEPARENT})

    [request] = spans.named("GET /readyz")
    checks = await spans.wait_for("grpc.health.v1.Health/Check", count=len(all_services))
    assert {parent_id_hex(check) for check in checks} == {span_id_hex(request)}
    assert {check.kind for check in checks} == {SpanKind.CLIENT}
    sent = {metadata["traceparent"].split("-")[2] for metadata in health.metadata}
    assert sent == {span_id_hex(check) for check in checks}
    assert {metadata["traceparent"].split("-")[1] for metadata in health.metadata} == {TRACE_ID}
