"""gRPC channels to other services: deadlines, retries, context forwarding, client spans, metrics.

Create one channel per target at start-up and reuse it for every call; a channel
multiplexes calls over its connections and reconnects by itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from taskmesh_chassis.context import current_request
from taskmesh_chassis.identity import current_caller
from taskmesh_chassis.metrics import CLIENT_RPC_HANDLED, CLIENT_RPC_HANDLING_SECONDS
from taskmesh_chassis.tracing import get_tracer, trace_headers

_tracer = get_tracer(__name__)

# Pings keep idle connections through NATs and load balancers and find dead peers quickly;
# the server side (grpc_server.SERVER_OPTIONS) permits this rate.
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 1),
    # gRPC's default reconnect backoff grows to 120 s; a restarted service must be
    # reachable again within seconds, not minutes.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    # The service config below is the whole truth; never take one from DNS.
    ("grpc.service_config_disable_resolution", 1),
]


def retry_service_config(
    service_full_name: str, idempotent_methods: Sequence[str], max_attempts: int = 4
) -> dict[str, Any]:
    """A gRPC service config retrying UNAVAILABLE with backoff for the idempotent methods only.

    Only methods that are safe to run twice are listed: a retried call may have reached the
    server before the connection broke.
    """
    if not idempotent_methods:
        return {}
    return {
        "methodConfig": [
            {
                "name": [
                    {"service": service_full_name, "method": method}
                    for method in idempotent_methods
                ],
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }


def create_channel(
    target: str,
    *,
    service_full_name: str,
    idempotent_methods: Sequence[str],
    default_timeout_s: float,
) -> grpc.aio.Channel:
    """Open an insecure channel to `target` (host:port) with keepalive, retries and interceptors.

    Every call without a deadline gets `default_timeout_s`; every call forwards the current
    request's id and trace context (see `taskmesh_chassis.context.bind_request`), runs in a
    client span and is counted in the client RPC metrics.
    """
    service_config = retry_service_config(service_full_name, idempotent_methods)
    options: list[tuple[str, Any]] = [
        *CHANNEL_OPTIONS,
        ("grpc.service_config", json.dumps(service_config)),
    ]
    return grpc.aio.insecure_channel(
        target,
        options=options,
        interceptors=outgoing_call_interceptors(default_timeout_s, target=target),
    )


def outgoing_call_interceptors(
    default_timeout_s: float, *, target: str = ""
) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors, one per call kind: default deadline, context, span and metrics.

    `target` (host:port) is recorded on the client spans as the server's address.
    """
    observer = _CallObserver(default_timeout_s, target)
    # grpc.aio files each interceptor object under the first call kind it implements only,
    # so covering all four kinds takes four objects.
    return [
        _UnaryUnaryInterceptor(observer),
        _UnaryStreamInterceptor(observer),
        _StreamUnaryInterceptor(observer),
        _StreamStreamInterceptor(observer),
    ]


def with_default_deadline(details: Any, timeout_s: float) -> Any:
    """Return the call details with `timeout_s` as timeout when they have none."""
    return details if details.timeout is not None else details._replace(timeout=timeout_s)


def forward_request_context(details: Any, trace_context: Context | None = None) -> Any:
    """Return the call details with the request's id, trace context and verified caller.

    The trace context is that of `trace_context` (the client span's), by default the current
    one. The caller (`taskmesh_chassis.identity.bind_caller`) travels as its access token in
    `authorization` plus `x-user-id`/`x-user-role`, so the next service verifies it itself.
    Keys the caller already set are left alone.
    """
    request = current_request()
    caller = current_caller()
    forwarded = [
        *(request.forwarded_metadata() if request is not None else ()),
        *trace_headers(trace_context).items(),
        *(caller.forwarded_metadata() if caller is not None else ()),
    ]
    if not forwarded:
        return details
    metadata = grpc.aio.Metadata.from_tuple(tuple(details.metadata or ()))
    for key, value in forwarded:
        if key not in metadata:
            metadata.add(key, value)
    return details._replace(metadata=metadata)


def split_method(method: str | bytes) -> tuple[str, str]:
    """(service, method) of a method path: `/taskmesh.tasks.v1.TasksService/GetTask`."""
    path = method.decode() if isinstance(method, bytes) else method
    service, _, name = path.lstrip("/").rpartition("/")
    return service, name


class _CallObserver:
    """Starts each call in a client span, and ends the span and counts the call when it is done.

    A call is done when its status is known, which for streaming calls is long after the
    interceptor returned it; the span and the metrics are completed from its done callback.
    """

    def __init__(self, default_timeout_s: float, target: str) -> None:
        self._default_timeout_s = default_timeout_s
        self._target = target
        self._finishing: set[asyncio.Task[None]] = set()

    async def intercept(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        service, method = split_method(details.method)
        attributes: dict[str, str] = {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": method,
        }
        if self._target:
            attributes["server.address"] = self._target
        span = _tracer.start_span(
            f"{service}/{method}", kind=SpanKind.CLIENT, attributes=attributes
        )
        started = time.perf_counter()
        details = forward_request_context(
            with_default_deadline(details, self._default_timeout_s),
            trace.set_span_in_context(span),
        )
        try:
            call = await continuation(details, request)
        except BaseException as error:
            self._record(span, service, method, started, _code_of(error), str(error))
            raise
        call.add_done_callback(lambda done: self._on_done(done, span, service, method, started))
        return call

    def _on_done(self, call: Any, span: Span, service: str, method: str, started: float) -> None:
        ended = time.perf_counter()
        # The call is done, so its status is at hand; reading it takes a coroutine all the same.
        task = asyncio.ensure_future(self._finish(call, span, service, method, started, ended))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(
        self, call: Any, span: Span, service: str, method: str, started: float, ended: float
    ) -> None:
        code = await call.code()
        details = await call.details() if code != grpc.StatusCode.OK else ""
        self._record(span, service, method, started, code, details or "", ended=ended)

    @staticmethod
    def _record(
        span: Span,
        service: str,
        method: str,
        started: float,
        code: grpc.StatusCode,
        details: str,
        *,
        ended: float | None = None,
    ) -> None:
        finished = time.perf_counter() if ended is None else ended
        CLIENT_RPC_HANDLED.labels(service, method, code.name).inc()
        CLIENT_RPC_HANDLING_SECONDS.labels(service, method).observe(finished - started)
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code != grpc.StatusCode.OK:
            span.set_status(
                Status(StatusCode.ERROR, f"{code.name}: {details}" if details else code.name)
            )
        span.end()


def _code_of(error: BaseException) -> grpc.StatusCode:
    if isinstance(error, grpc.aio.AioRpcError):
        code: grpc.StatusCode = error.code()
        return code
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


class _Intercepting:
    def __init__(self, observer: _CallObserver) -> None:
        self._observer = observer


class _UnaryUnaryInterceptor(_Intercepting, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return await self._observer.intercept(continuation, details, request)


class _UnaryStreamInterceptor(_Intercepting, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return await self._observer.intercept(continuation, details, request)


class _StreamUnaryInterceptor(_Intercepting, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return await self._observer.intercept(continuation, details, requests)


class _StreamStreamInterceptor(_Intercepting, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return await self._observer.intercept(continuation, details, requests)
