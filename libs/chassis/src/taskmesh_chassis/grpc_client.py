"""gRPC channels to other services: deadlines, retries of idempotent calls, context forwarding.

Create one channel per target at start-up and reuse it for every call; a channel
multiplexes calls over its connections and reconnects by itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from taskmesh_chassis.context import current_request
from taskmesh_chassis.identity import current_caller

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
    request's id and trace context (see `taskmesh_chassis.context.bind_request`).
    """
    service_config = retry_service_config(service_full_name, idempotent_methods)
    options: list[tuple[str, Any]] = [
        *CHANNEL_OPTIONS,
        ("grpc.service_config", json.dumps(service_config)),
    ]
    return grpc.aio.insecure_channel(
        target, options=options, interceptors=outgoing_call_interceptors(default_timeout_s)
    )


def outgoing_call_interceptors(default_timeout_s: float) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors, one per call kind, that add a default deadline and forward context."""

    def rewrite(details: Any) -> Any:
        return forward_request_context(with_default_deadline(details, default_timeout_s))

    # grpc.aio files each interceptor object under the first call kind it implements only,
    # so covering all four kinds takes four objects.
    return [
        _UnaryUnaryRewrite(rewrite),
        _UnaryStreamRewrite(rewrite),
        _StreamUnaryRewrite(rewrite),
        _StreamStreamRewrite(rewrite),
    ]


def with_default_deadline(details: Any, timeout_s: float) -> Any:
    """Return the call details with `timeout_s` as timeout when they have none."""
    return details if details.timeout is not None else details._replace(timeout=timeout_s)


def forward_request_context(details: Any) -> Any:
    """Return the call details with the current request's id, traceparent and verified caller.

    The caller (`taskmesh_chassis.identity.bind_caller`) travels as its access token in
    `authorization` plus `x-user-id`/`x-user-role`, so the next service verifies it itself.
    Keys the caller already set are left alone.
    """
    request = current_request()
    caller = current_caller()
    if request is None and caller is None:
        return details
    forwarded = [
        *(request.forwarded_metadata() if request is not None else ()),
        *(caller.forwarded_metadata() if caller is not None else ()),
    ]
    metadata = grpc.aio.Metadata.from_tuple(tuple(details.metadata or ()))
    for key, value in forwarded:
        if key not in metadata:
            metadata.add(key, value)
    return details._replace(metadata=metadata)


class _Rewrite:
    def __init__(self, rewrite: Callable[[Any], Any]) -> None:
        self._rewrite = rewrite


class _UnaryUnaryRewrite(_Rewrite, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._rewrite(details), request)


class _UnaryStreamRewrite(_Rewrite, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._rewrite(details), request)


class _StreamUnaryRewrite(_Rewrite, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return await continuation(self._rewrite(details), requests)


class _StreamStreamRewrite(_Rewrite, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return await continuation(self._rewrite(details), requests)
