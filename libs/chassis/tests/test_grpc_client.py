from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from taskmesh_chassis.context import RequestContext, bind_request
from taskmesh_chassis.grpc_client import create_channel, retry_service_config
from taskmesh_chassis.grpc_server import GrpcServer

EchoCall = Callable[[grpc.aio.Channel, str], Callable[..., Awaitable[list[bytes]]]]
ECHO = "test.v1.Echo"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


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


async def test_request_id_and_traceparent_are_forwarded_on_every_kind(
    client_channel: grpc.aio.Channel, echo_call: EchoCall, kind: str, echo_service: Any
) -> None:
    bind_request(
        RequestContext("req-abc", user_id="u1", user_role="admin", traceparent=TRACEPARENT)
    )
    await echo_call(client_channel, kind)(b"hi")
    [metadata] = echo_service.seen_metadata
    assert metadata["x-request-id"] == "req-abc"
    assert metadata["traceparent"] == TRACEPARENT
    # Identity is asserted by the gateway alone, never passed on implicitly.
    assert "x-user-id" not in metadata


async def test_metadata_set_by_the_caller_is_not_overwritten(
    client_channel: grpc.aio.Channel, echo_service: Any
) -> None:
    bind_request(RequestContext("req-abc"))
    await client_channel.unary_unary(f"/{ECHO}/Unary")(
        b"hi", metadata=(("x-request-id", "explicit"),)
    )
    [metadata] = echo_service.seen_metadata
    assert metadata["x-request-id"] == "explicit"
