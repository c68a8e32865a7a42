"""Where a WebSocket handshake carries its access token, and that the query loses it."""

from __future__ import annotations

import logging
from typing import Any

from taskmesh_gateway.log_redaction import QueryTokenFilter
from taskmesh_gateway.realtime.endpoint import PresentedToken, take_token


def handshake(query: bytes = b"", subprotocols: list[str] | None = None) -> dict[str, Any]:
    return {"type": "websocket", "query_string": query, "subprotocols": subprotocols or []}


def test_a_query_token_is_taken_out_of_the_query_string() -> None:
    scope = handshake(b"lang=fr&access_token=eyJ.a%2Bb.c&x=1")

    presented = take_token(scope)

    assert presented == PresentedToken("eyJ.a+b.c", None)
    assert scope["query_string"] == b"lang=fr&x=1"


def test_a_subprotocol_token_is_accepted_as_bearer() -> None:
    presented = take_token(handshake(subprotocols=["bearer", "eyJ.b.c"]))

    assert presented == PresentedToken("eyJ.b.c", "bearer")


def test_bearer_without_a_token_is_no_token() -> None:
    presented = take_token(handshake(subprotocols=["bearer"]))

    assert presented == PresentedToken(None, "bearer")


def test_no_token_at_all() -> None:
    assert take_token(handshake(b"lang=fr", ["chat"])) == PresentedToken(None, None)


def test_a_token_in_both_places_is_a_malformed_handshake() -> None:
    scope = handshake(b"access_token=eyJ.a.c", ["bearer", "eyJ.b.c"])

    presented = take_token(scope)

    assert presented.token is None
    assert presented.problem is not None
    assert scope["query_string"] == b""


def test_two_query_tokens_are_a_malformed_handshake() -> None:
    presented = take_token(handshake(b"access_token=a&access_token=b"))

    assert presented.token is None
    assert presented.problem == "access_token is given more than once"


def test_the_log_filter_redacts_query_tokens_in_messages_and_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.DEBUG,
        __file__,
        1,
        "< GET %s HTTP/1.1 (access_token=abc)",
        ("/api/v1/ws?x=1&access_token=eyJ.a.b&y=2",),
        None,
    )

    QueryTokenFilter().filter(record)

    assert record.getMessage() == (
        "< GET /api/v1/ws?x=1&access_token=[redacted]&y=2 HTTP/1.1 (access_token=[redacted])"
    )
