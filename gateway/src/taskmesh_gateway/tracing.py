"""The gateway's tracing: the process's tracer provider, and one server span per request.

The span continues the `traceparent` the request came with (Traefik's, when Traefik traces;
else whatever the client sent), or starts a new trace. Everything the gateway does for the
request, its gRPC calls included, happens inside it (docs/tracing.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, use_span
from starlette.types import Scope
from taskmesh_chassis.tracing import (
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    configure_tracing,
    context_from_headers,
    get_tracer,
    unsampled_span,
)

from taskmesh_gateway.settings import GatewaySettings

_tracer = get_tracer(__name__)
_TRACE_HEADERS = frozenset({TRACEPARENT_HEADER.encode(), TRACESTATE_HEADER.encode()})
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Paths of liveness and readiness probes and metrics scrapes."""


def configure_gateway_tracing(settings: GatewaySettings) -> None:
    """Configure the process's tracing as `taskmesh-gateway`, this instance by its name."""
    configure_tracing("gateway", instance=settings.instance_name, settings=settings)


@contextmanager
def request_span(scope: Scope) -> Iterator[Span]:
    """Run the request (an HTTP request or a whole WebSocket) inside a server span.

    `finish_request_span` names it after the method and route; the query string is never
    recorded (the WebSocket's carries a token). A probe (`PROBE_PATHS`) that came
    without trace context runs in an unsampled span: its log lines have ids, but the
    health checks and scrapes that arrive every few seconds fill no trace backend.
    """
    received = {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in scope["headers"]
        if key in _TRACE_HEADERS
    }
    if scope["path"] in PROBE_PATHS and TRACEPARENT_HEADER not in received:
        with use_span(unsampled_span()) as probe:
            yield probe
        return
    with _tracer.start_as_current_span(
        "HTTP" if scope["type"] == "http" else "WEBSOCKET",
        context=context_from_headers(received),
        kind=SpanKind.SERVER,
        attributes={"url.path": scope["path"], "url.scheme": scope.get("scheme", "http")},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def finish_request_span(span: Span, *, method: str, route: str | None, status: int | None) -> None:
    """Name the span `<method> <route template>` (the method alone when no route matched).

    `method` is one of a known few (never a client's invention: span names stay few), or
    `WEBSOCKET` for a WebSocket, which has no `status`. A 5xx answer is the server's fault,
    so the span is an error; a 4xx is the client's.
    """
    span.update_name(method if route is None else f"{method} {route}")
    if route is not None:
        span.set_attribute("http.route", route)
    if status is not None:
        span.set_attribute("http.request.method", method)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, str(status)))
