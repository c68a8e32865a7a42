"""The request context that travels with a call: request id, caller identity, trace context.

The gateway creates it from the HTTP request, sends it to the services as gRPC metadata
(docs/processes.md), and each process binds it for the duration of the request so that
its log lines carry the ids and its own outgoing calls forward them.

The trace context itself travels with the OpenTelemetry span (taskmesh_chassis.tracing):
whoever starts the span that handles a request binds the request with that span's
`traceparent`, so `RequestContext.traceparent` and the logs' `trace_id` name the same trace.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

import structlog

REQUEST_ID_KEY: Final = "x-request-id"
USER_ID_KEY: Final = "x-user-id"
USER_ROLE_KEY: Final = "x-user-role"
TRACEPARENT_KEY: Final = "traceparent"

# Client-sent ids end up in log lines and response headers, so only plain tokens are kept.
_SANE_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,128}")
# W3C trace context: version-trace_id-parent_id-flags, lower-case hex.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

_LOG_FIELDS = ("request_id", "user_id", "trace_id")

_current_request: ContextVar[RequestContext | None] = ContextVar(
    "taskmesh_current_request", default=None
)


def new_request_id() -> str:
    """Return a fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


def is_sane_token(value: str) -> bool:
    """Tell whether a client-sent id is 1-128 characters of [A-Za-z0-9._-]."""
    return _SANE_TOKEN.fullmatch(value) is not None


def trace_id_of(traceparent: str) -> str | None:
    """Return the trace id of a valid W3C `traceparent`, else None."""
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _ = match.groups()
    if version == "ff" or set(trace_id) == {"0"} or set(parent_id) == {"0"}:
        return None
    return trace_id


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who is asking and which request this is; identity is set only by the gateway."""

    request_id: str
    user_id: str | None = None
    user_role: str | None = None
    traceparent: str | None = None

    @property
    def trace_id(self) -> str | None:
        """The trace id carried by `traceparent`, if any."""
        return trace_id_of(self.traceparent) if self.traceparent else None

    @classmethod
    def from_metadata(cls, metadata: Iterable[tuple[str, str | bytes]]) -> RequestContext:
        """Read the context a caller sent; invent a request id if it sent none or a bad one."""
        received = {key: value for key, value in metadata if isinstance(value, str)}
        request_id = received.get(REQUEST_ID_KEY, "")
        traceparent = received.get(TRACEPARENT_KEY)
        return cls(
            request_id=request_id if is_sane_token(request_id) else new_request_id(),
            user_id=_sane_or_none(received.get(USER_ID_KEY)),
            user_role=_sane_or_none(received.get(USER_ROLE_KEY)),
            traceparent=traceparent if traceparent and trace_id_of(traceparent) else None,
        )

    def forwarded_metadata(self) -> list[tuple[str, str]]:
        """Metadata to forward on outgoing calls: the request id only.

        The caller's identity is deliberately not forwarded: only the gateway asserts it. The
        trace context is the client span's, which the gRPC client interceptor adds.
        """
        return [(REQUEST_ID_KEY, self.request_id)]

    def log_fields(self) -> dict[str, str]:
        """The fields every log line of this request carries."""
        fields = {"request_id": self.request_id}
        if self.user_id:
            fields["user_id"] = self.user_id
        if self.trace_id:
            fields["trace_id"] = self.trace_id
        return fields


def _sane_or_none(value: str | None) -> str | None:
    return value if value is not None and is_sane_token(value) else None


def bind_request(context: RequestContext) -> None:
    """Make `context` the current request of this task and of its log lines.

    Call it where each request runs in a contextvars.Context of its own (a gRPC handler, an
    ASGI request's task): nothing needs resetting afterwards, that context is discarded.
    """
    _current_request.set(context)
    # A field this request lacks must not be inherited from an enclosing context.
    structlog.contextvars.unbind_contextvars(*_LOG_FIELDS)
    structlog.contextvars.bind_contextvars(**context.log_fields())


def current_request() -> RequestContext | None:
    """Return the request being handled by this task, if any."""
    return _current_request.get()
