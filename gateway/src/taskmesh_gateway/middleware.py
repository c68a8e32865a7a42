"""Pure ASGI middleware that every request passes through.

`RequestContextMiddleware` gives the request its id and its server span (tracing.py), logs
and measures it and turns an unexpected exception into a 500 problem;
`SecurityHeadersMiddleware` adds the headers every response carries. Both wrap `send` only,
so responses stream through untouched.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import structlog
from opentelemetry.trace import Span
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from taskmesh_chassis.context import (
    RequestContext,
    bind_request,
    is_sane_token,
    new_request_id,
)
from taskmesh_chassis.tracing import current_traceparent

from taskmesh_gateway.problems import internal_error_response
from taskmesh_gateway.tracing import finish_request_span, request_span

log = structlog.get_logger("taskmesh_gateway.access")

REQUEST_ID_HEADER = b"x-request-id"
UNMATCHED_ROUTE = "(unmatched)"
"""The route label of requests that matched no route, so raw paths never become labels."""

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""Swagger UI is served from the gateway itself (scripts, styles, its initializer), so even
the documentation page needs no inline script and no third-party origin."""
DOCS_PREFIX = "/docs"
HSTS = "max-age=63072000; includeSubDomains"


def route_template(scope: Scope) -> str:
    """The path template of the route that handled the request (`/api/v1/tasks/{id}`)."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    mount_path = scope.get("root_path")
    if mount_path:
        return f"{mount_path}/{{path}}"
    return UNMATCHED_ROUTE


def _header(scope: Scope, name: bytes) -> str | None:
    key: bytes
    value: bytes
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _request_context(scope: Scope) -> RequestContext:
    """The request's id (the client's, if sane) and the trace context of its current span."""
    sent_id = _header(scope, REQUEST_ID_HEADER)
    return RequestContext(
        request_id=sent_id if sent_id is not None and is_sane_token(sent_id) else new_request_id(),
        traceparent=current_traceparent(),
    )


class RequestContextMiddleware:
    """Request id, log context, access log, HTTP metrics and the last-resort 500."""

    def __init__(self, app: ASGIApp, *, instance: str) -> None:
        self.app = app
        self.instance = instance

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request inside its context; answer and log it whatever happens."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # The server span first: the request context and every log line name it.
        with request_span(scope) as span:
            context = _request_context(scope)
            bind_request(context)
            structlog.contextvars.bind_contextvars(instance=self.instance)
            scope.setdefault("state", {})["request_id"] = context.request_id
            if scope["type"] == "websocket":
                try:
                    await self.app(
                        scope, receive, _with_request_id_on_handshake(send, context.request_id)
                    )
                finally:
                    finish_request_span(
                        span, method="WEBSOCKET", route=_matched_route(scope), status=None
                    )
                return
            await self._answer(scope, receive, send, context.request_id, span)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, span: Span
    ) -> None:
        started = time.perf_counter()
        status = 500
        response_started = False
        request_id_header = (REQUEST_ID_HEADER, request_id.encode("latin-1"))

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), request_id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as exc:
            if response_started:
                log.error("request.failed_mid_response", exc_info=exc)
                raise
            await internal_error_response(scope, exc)(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_REQUEST_SECONDS.labels(route, method).observe(elapsed)
            log.info(
                "http.request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                instance=self.instance,
            )
            finish_request_span(span, method=method, route=_matched_route(scope), status=status)


def _matched_route(scope: Scope) -> str | None:
    route = route_template(scope)
    return None if route == UNMATCHED_ROUTE else route


_HANDSHAKE_ANSWERS = frozenset({"websocket.accept", "websocket.http.response.start"})


def _with_request_id_on_handshake(send: Send, request_id: str) -> Send:
    header = (REQUEST_ID_HEADER, request_id.encode("latin-1"))

    async def send_with_request_id(message: Message) -> None:
        if message["type"] in _HANDSHAKE_ANSWERS:
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    return send_with_request_id


class SecurityHeadersMiddleware:
    """nosniff, no-referrer, a Content-Security-Policy and, behind TLS, HSTS on every response.

    A response that sets its own Content-Security-Policy (an HTML page that needs more) keeps it.
    """

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        fixed = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
        if hsts:
            fixed.append((b"strict-transport-security", HSTS.encode()))
        self._fixed: tuple[tuple[bytes, bytes], ...] = tuple(fixed)
        self._api_csp = (b"content-security-policy", API_CSP.encode())
        self._docs_csp = (b"content-security-policy", DOCS_CSP.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to the response start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        is_docs = path == DOCS_PREFIX or path.startswith(DOCS_PREFIX + "/")
        csp = self._docs_csp if is_docs else self._api_csp

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
                if not _has_header(headers, b"content-security-policy"):
                    headers.append(csp)
                headers.extend(self._fixed)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _has_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(key.lower() == name for key, _ in headers)
