from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from taskmesh_chassis.context import RequestContext, bind_request
from taskmesh_chassis.grpc_client import create_channel, retry_service_config
from taskmesh_chassis.grpc_server import GrpcServer
from taskmesh_chassis.testing import capture_spans, parent_id_hex, span_id_hex, trace_id_hex
from taskmesh_chassis.tracing import get_tracer

from .events.support import eventually, metric

EchoCall = Callable[[grpc.aio.Channel, str], Callable[..., Awaitable[list[bytes]]]]
ECHO = "test.v1.Echo"
tracer = get_tracer(__name__)


@pytest.fixture
async def client_channel(echo_server: GrpcServer) -> AsyncIterator[grpc.aio.Channel]:
    channel = create_channel(
        f"127.0.0.1:{echo_server.port}",
        service_full_name=ECHO,
        idempotent_methods=["Idempotent"],
        default_timeout_s=0.5,
    )
    async with channel:
        yield channel


async def test_retry_on_unavailable_for_idempotent_method_only(
    client_channel: grpc.aio.Channel, echo_service: Any
) -> None:
    answer = await client_channel.unary_unary(f"/{ECHO}/Idempotent")(b"safe")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client_channel.unary_unary(f"/{ECHO}/NotIdempotent")(b"unsafe")

    assert answer == b"safe"
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert echo_service.attempts == {"safe": 3, "unsafe": 1}


def test_no_idempotent_methods_means_no_retry_policy() -> None:
    assert retry_service_config(ECHO, []) == {}


def test_retry_policy_is_valid_service_config_json() -> None:
    config = json.loads(json.dumps(retry_service_config(ECHO, ["Get", "List"])))
    [method_config] = config["methodConfig"]
    assert method_config["name"] == [
        {"service": ECHO, "method": "Get"},
        {"service": ECHO, "method": "List"},
    ]
    assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


async def test_call_without_deadline_gets_the_default_one(
    client_channel: grpc.aio.Channel,
) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client_channel.unary_unary(f"/{ECHO}/Slow")(b"wait")
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2


async def test_call_with_its_own_deadline_keeps_it(
    client_channel: grpc.aio.Channel, echo_service: Any
) -> None:
    slow = client_channel.unary_unary(f"/{ECHO}/Slow")
    call = slow(b"wait", timeout=5)
    # Past the 0.5 s default, the call is still waiting for the gate.
    await asyncio.sleep(0.8)
    echo_service.gate.set()
    assert await call == b"wait"


ECHO_METHOD_OF_KIND = {
    "unary_unary": "Unary",
    "unary_stream": "ServerStream",
    "stream_unary": "ClientStream",
    "stream_stream": "BidiStream",
}


def span_of_kind(spans: list[ReadableSpan], kind: SpanKind) -> ReadableSpan:
    [span] = [span for span in spans if span.kind == kind]
    return span


async def test_request_id_and_the_client_spans_trace_context_are_forwarded_on_every_kind(
    client_channel: grpc.aio.Channel, echo_call: EchoCall, kind: str, echo_service: Any
) -> None:
    spans = capture_spans()
    bind_request(RequestContext("req-abc", user_id="u1", user_role="admin"))
    with tracer.start_as_current_span("caller"):
        await echo_call(client_channel, kind)(b"hi")
    name = f"{ECHO}/{ECHO_METHOD_OF_KIND[kind]}"
    # Both ends in this process: the server's span and the client's.
    ended = await spans.wait_for(name, count=2)
    client, server = span_of_kind(ended, SpanKind.CLIENT), span_of_kind(ended, SpanKind.SERVER)
    [caller] = spans.named("caller")
    [metadata] = echo_service.seen_metadata
    assert metadata["x-request-id"] == "req-abc"
    assert metadata["traceparent"].split("-")[1:3] == [trace_id_hex(caller), span_id_hex(client)]
    assert parent_id_hex(client) == span_id_hex(caller)
    assert parent_id_hex(server) == span_id_hex(client)
    assert client.attributes is not None
    assert client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    # Identity is asserted by the gateway alone, never passed on implicitly.
    assert "x-user-id" not in metadata


async def test_a_failed_call_ends_its_client_span_in_error(
    client_channel: grpc.aio.Channel,
) -> None:
    spans = capture_spans()
    with pytest.raises(grpc.aio.AioRpcError):
        await client_channel.unary_unary(f"/{ECHO}/Unary")(b"not-found")
    client = span_of_kind(await spans.wait_for(f"{ECHO}/Unary", count=2), SpanKind.CLIENT)
    assert client.status.status_code == StatusCode.ERROR
    assert client.status.description == "NOT_FOUND: no such echo"
    assert client.parent is None  # no span was current: the call started a trace


async def test_client_metrics_count_calls_by_method_and_code(
    client_channel: grpc.aio.Channel,
) -> None:
    labels = {"grpc_service": ECHO, "grpc_method": "Unary"}
    ok_before = metric("grpc_client_handled_total", **labels, grpc_code="OK")
    not_found_before = metric("grpc_client_handled_total", **labels, grpc_code="NOT_FOUND")
    timed_before = metric("grpc_client_handling_seconds_count", **labels)
    unary = client_channel.unary_unary(f"/{ECHO}/Unary")
    await unary(b"hi")
    with pytest.raises(grpc.aio.AioRpcError):
        await unary(b"not-found")

    async def counted() -> bool:
        return metric("grpc_client_handling_seconds_count", **labels) == timed_before + 2

    await eventually(counted, timeout_s=5, what="both calls counted")
    assert metric("grpc_client_handled_total", **labels, grpc_code="OK") == ok_before + 1
    assert (
        metric("grpc_client_handled_total", **labels, grpc_code="NOT_FOUND") == not_found_before + 1
    )


async def test_metadata_set_by_the_caller_is_not_overwritten(
    client_channel: grpc.aio.Channel, echo_service: Any
) -> None:
    bind_request(RequestContext("req-abc"))
    await client_channel.unary_unary(f"/{ECHO}/Unary")(
        b"hi", metadata=(("x-request-id", "explicit"),)
    )
    [metadata] = echo_service.seen_metadata
    assert metadata["x-request-id"] == "explicit"
