"""A tiny raw-bytes echo service, served by the chassis server in-process, for the tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import structlog
from pymongo.errors import ServerSelectionTimeoutError
from taskmesh_chassis.context import RequestContext, current_request
from taskmesh_chassis.errors import FieldError, InvalidArgument, NotFound
from taskmesh_chassis.grpc_server import GrpcServer, ServicerRegistration
from taskmesh_chassis.testing import free_port, secantus_url

__all__ = ["free_port", "secantus_url"]

ECHO_SERVICE = "test.v1.Echo"
log = structlog.get_logger("echo")


async def fail_on_request(request: bytes) -> None:
    """Behave according to the request: b"not-found", b"crash", b"invalid", b"db-down"."""
    if request == b"not-found":
        raise NotFound("no such echo")
    if request == b"crash":
        raise RuntimeError("connection to db-7.internal:27017 refused")
    if request == b"invalid":
        raise InvalidArgument("bad echo", [FieldError(("task", "title"), "must not be empty")])
    if request == b"db-down":
        raise ServerSelectionTimeoutError("db-7.internal:27017: timed out")


@dataclass
class EchoService:
    """Records what each call saw; `gate` holds the slow method until it is set."""

    seen_requests: list[RequestContext | None] = field(default_factory=list)
    seen_metadata: list[dict[str, str]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)
    attempts: dict[str, int] = field(default_factory=dict)
    finished: list[bytes] = field(default_factory=list)

    def _record(self, context: Any) -> None:
        self.seen_requests.append(current_request())
        metadata = context.invocation_metadata() or ()
        self.seen_metadata.append({key: value for key, value in metadata})
        log.info("echo.called")

    async def unary(self, request: bytes, context: Any) -> bytes:
        self._record(context)
        await fail_on_request(request)
        return request

    async def server_stream(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        self._record(context)
        yield request
        await fail_on_request(request)
        yield request

    async def client_stream(self, requests: AsyncIterator[bytes], context: Any) -> bytes:
        self._record(context)
        received = [request async for request in requests]
        for request in received:
            await fail_on_request(request)
        return b"".join(received)

    async def bidi_stream(
        self, requests: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[bytes]:
        self._record(context)
        async for request in requests:
            await fail_on_request(request)
            yield request

    async def slow(self, request: bytes, context: Any) -> bytes:
        self._record(context)
        self.slow_started.set()
        await self.gate.wait()
        self.finished.append(request)
        return request

    def unimplemented(self, request: bytes, context: Any) -> bytes:
        # What the generated base class does for an RPC a servicer does not override.
        context.set_code(grpc.StatusCode.UNIMPLEMENTED)
        context.set_details("Method not implemented!")
        raise NotImplementedError("Method not implemented!")

    async def flaky(self, request: bytes, context: Any) -> bytes:
        # Fails with UNAVAILABLE on the first two attempts for each payload.
        key = request.decode()
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if self.attempts[key] < 3:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return request

    def registration(self) -> ServicerRegistration:
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
            "BidiStream": grpc.stream_stream_rpc_method_handler(self.bidi_stream),
            "Slow": grpc.unary_unary_rpc_method_handler(self.slow),
            "Unimplemented": grpc.unary_unary_rpc_method_handler(self.unimplemented),
            "Idempotent": grpc.unary_unary_rpc_method_handler(self.flaky),
            "NotIdempotent": grpc.unary_unary_rpc_method_handler(self.flaky),
        }
        generic = grpc.method_handlers_generic_handler(ECHO_SERVICE, handlers)

        def add_to_server(_: object, server: Any) -> None:
            server.add_generic_rpc_handlers((generic,))

        return ServicerRegistration(add_to_server, self, ECHO_SERVICE)


async def _chunks(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def call_kind(channel: grpc.aio.Channel, kind: str) -> Callable[..., Awaitable[list[bytes]]]:
    """A function calling the echo method of one kind with a payload; answers all responses."""

    async def call(payload: bytes, **kwargs: Any) -> list[bytes]:
        if kind == "unary_unary":
            return [await channel.unary_unary(f"/{ECHO_SERVICE}/Unary")(payload, **kwargs)]
        if kind == "unary_stream":
            stream = channel.unary_stream(f"/{ECHO_SERVICE}/ServerStream")(payload, **kwargs)
            return [response async for response in stream]
        if kind == "stream_unary":
            method = channel.stream_unary(f"/{ECHO_SERVICE}/ClientStream")
            return [await method(_chunks(b"first", payload), **kwargs)]
        stream = channel.stream_stream(f"/{ECHO_SERVICE}/BidiStream")(
            _chunks(b"first", payload), **kwargs
        )
        return [response async for response in stream]

    return call


@pytest.fixture(params=["unary_unary", "unary_stream", "stream_unary", "stream_stream"])
def kind(request: pytest.FixtureRequest) -> str:
    """Each of the four RPC kinds in turn."""
    return str(request.param)


@pytest.fixture
def echo_call() -> Callable[[grpc.aio.Channel, str], Callable[..., Awaitable[list[bytes]]]]:
    """`echo_call(channel, kind)`: a function calling the echo method of that kind."""
    return call_kind


@pytest.fixture
def echo_service() -> EchoService:
    return EchoService()


@pytest.fixture
async def echo_server(echo_service: EchoService) -> AsyncIterator[GrpcServer]:
    server = GrpcServer([echo_service.registration()], host="127.0.0.1", port=0)
    await server.start()
    yield server
    echo_service.gate.set()
    await server.stop(0)


@pytest.fixture
async def echo_channel(echo_server: GrpcServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{echo_server.port}") as channel:
        yield channel
