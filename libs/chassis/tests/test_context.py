from __future__ import annotations

import pytest
from taskmesh_chassis.context import (
    RequestContext,
    is_sane_token,
    new_request_id,
    trace_id_of,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("token", ["a", "req-123", "A.b_c-9", "x" * 128, new_request_id()])
def test_sane_token_accepted(token: str) -> None:
    assert is_sane_token(token)


@pytest.mark.parametrize("token", ["", "x" * 129, "a b", "a\nb", "é", "a/b", "<script>"])
def test_unsafe_token_refused(token: str) -> None:
    assert not is_sane_token(token)


def test_trace_id_is_read_from_traceparent() -> None:
    assert trace_id_of(TRACEPARENT) == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(
    "traceparent",
    [
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ],
)
def test_invalid_traceparent_has_no_trace_id(traceparent: str) -> None:
    assert trace_id_of(traceparent) is None


def test_context_from_metadata_keeps_what_the_caller_sent() -> None:
    context = RequestContext.from_metadata(
        [
            ("x-request-id", "req-1"),
            ("x-user-id", "u1"),
            ("x-user-role", "admin"),
            ("traceparent", TRACEPARENT),
        ]
    )
    assert context == RequestContext("req-1", "u1", "admin", TRACEPARENT)
    assert context.log_fields() == {
        "request_id": "req-1",
        "user_id": "u1",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }


def test_context_from_metadata_invents_a_missing_or_unsafe_request_id() -> None:
    missing = RequestContext.from_metadata([])
    unsafe = RequestContext.from_metadata([("x-request-id", "a b")])
    assert is_sane_token(missing.request_id)
    assert unsafe.request_id != "a b"
    assert is_sane_token(unsafe.request_id)


def test_context_from_metadata_drops_unsafe_identity_and_bad_traceparent() -> None:
    context = RequestContext.from_metadata(
        [("x-user-id", "u1\nforged"), ("traceparent", "nope"), ("x-user-role", b"admin")]
    )
    assert (context.user_id, context.user_role, context.traceparent) == (None, None, None)


def test_forwarded_metadata_carries_the_request_id_only() -> None:
    # Identity is the gateway's to assert; the trace context is the client span's.
    context = RequestContext("req-1", "u1", "admin", TRACEPARENT)
    assert context.forwarded_metadata() == [("x-request-id", "req-1")]
