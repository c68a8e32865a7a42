"""`GET /api/v1/ws` end to end: real uvicorn, Redis, RabbitMQ and signing keys over gRPC.

Each gateway is `create_app` served by uvicorn exactly as `main.run` serves it, with its
lifespan: its JWKS come from a stand-in AuthService (GetJwks only), its admission and
revocation checks from Redis (database 14, fresh users per test), its events from an exchange
of this test's own on the local RabbitMQ, to which the tests publish envelopes as the
services' relays do.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aio_pika
import grpc
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh.events.v1 import events_pb2
from taskmesh.notifications.v1 import notifications_pb2
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_chassis.events import EventTopology, encode_event
from taskmesh_chassis.events.envelope import new_event
from taskmesh_chassis.events.topology import declare_exchange
from taskmesh_chassis.identity import revoked_token_key
from taskmesh_chassis.testing import capture_logs, find_free_port
from taskmesh_gateway.app import create_app
from taskmesh_gateway.main import server_options
from taskmesh_gateway.realtime.hub import SLOW_CLIENT
from taskmesh_gateway.settings import GatewaySettings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

if TYPE_CHECKING:
    from conftest import DropConnection

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/14"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
ISSUER, AUDIENCE, KID = "taskmesh", "taskmesh-api", "ws-test-key"
RECEIVE_TIMEOUT_S = 5.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwksOnly(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    """The AuthService as the gateway uses it: it publishes one Ed25519 key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.jwks = auth_pb2.Jwks(
            keys=[
                auth_pb2.Jwk(
                    kid=KID, kty="OKP", alg="EdDSA", use="sig", crv="Ed25519", x=b64url(raw)
                )
            ]
        )

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.Jwks:
        return self.jwks


@pytest.fixture(scope="module")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
async def auth_target(signing_key: Ed25519PrivateKey) -> AsyncIterator[str]:
    server = grpc.aio.server()
    auth_pb2_grpc.add_AuthServiceServicer_to_server(JwksOnly(signing_key), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


@dataclass
class Token:
    """An access token and the claims that identify it."""

    value: str
    user_id: str
    token_id: str


Mint = Callable[..., Token]


@pytest.fixture
def mint(signing_key: Ed25519PrivateKey) -> Mint:
    def mint(user_id: str | None = None, **changes: Any) -> Token:
        now = time.time()
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id or f"user-{uuid.uuid4().hex[:12]}",
            "role": "user",
            "iat": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
            "sid": uuid.uuid4().hex,
        } | changes
        headers = {"kid": KID, "typ": "at+jwt"}
        value = jwt.encode(claims, signing_key, algorithm="EdDSA", headers=headers)
        return Token(value, claims["sub"], claims["jti"])

    return mint


@pytest.fixture
def topology() -> EventTopology:
    return EventTopology(exchange=f"test.ws.{uuid.uuid4().hex[:10]}")


@dataclass
class Gateway:
    """One running gateway instance."""

    app: FastAPI
    settings: GatewaySettings

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.gateway_port}/api/v1/ws"


StartGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start_gateway(auth_target: str, topology: EventTopology) -> AsyncIterator[StartGateway]:
    """Serve gateways with uvicorn in this event loop; wait until each consumes its queue."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> Gateway:
        settings = GatewaySettings(
            **{
                "environment": "test",
                "gateway_port": find_free_port(),
                "instance_name": f"ws-test-{uuid.uuid4().hex[:6]}",
                "auth_grpc_target": auth_target,
                "redis_url": REDIS_URL,
                "amqp_url": AMQP_URL,
                "events_exchange": topology.exchange,
            }
            | overrides
        )
        app = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app, **server_options(settings)))
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
            await app.state.realtime.stream.subscribed.wait()
        return Gateway(app, settings)

    yield start
    for server, _ in servers:
        server.should_exit = True
    await asyncio.gather(*(task for _, task in servers))


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> Gateway:
    return await start_gateway()


Publish = Callable[[str, Message], Awaitable[str]]


@pytest.fixture
async def publish(topology: EventTopology) -> AsyncIterator[Publish]:
    """Publish an event to the test's exchange as a service's relay does; returns its id."""
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange = await declare_exchange(channel, topology)

    async def publish(event_type: str, payload: Message) -> str:
        event = new_event(event_type, source="taskmesh/test", subject="subject", payload=payload)
        message = aio_pika.Message(
            encode_event(event),
            content_type="application/protobuf",
            message_id=event.id,
            type=event.type,
        )
        await exchange.publish(message, routing_key=event_type)
        return event.id

    yield publish
    await channel.exchange_delete(topology.exchange)
    await connection.close()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def sockets() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


def fresh_ip() -> str:
    """A client address of the test's own (the in-process peer is a trusted proxy)."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}:{secrets.token_hex(2)}"


def open_socket(
    gateway: Gateway, token: Token | None = None, *, via: str = "query", **options: Any
) -> Any:
    """`websockets.connect` to the gateway with the token in the query or the subprotocol."""
    url = gateway.ws_url
    if token is not None and via == "query":
        url = f"{url}?access_token={token.value}"
    if token is not None and via == "subprotocol":
        options["subprotocols"] = ["bearer", token.value]
    return connect(
        url,
        additional_headers={"X-Forwarded-For": fresh_ip()},
        compression=None,
        open_timeout=5,
        **options,
    )


async def received(socket: ClientConnection) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(socket.recv(), RECEIVE_TIMEOUT_S))
    assert isinstance(message, dict)
    return message


async def closed(ws: ClientConnection, within_s: float) -> tuple[int | None, str | None]:
    """Wait for the server to close the socket; its close code and reason."""
    async with asyncio.timeout(within_s):
        await ws.wait_closed()
    return ws.close_code, ws.close_reason


async def eventually(check: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Wait until `check()` holds, polling; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def timestamp(value: float) -> Timestamp:
    result = Timestamp()
    result.FromNanoseconds(int(value * 1e9))
    return result


def task(owner_id: str, assignee_id: str | None = None, **changes: Any) -> tasks_pb2.Task:
    now = timestamp(time.time())
    fields: dict[str, Any] = {
        "id": uuid.uuid4().hex[:24],
        "owner_id": owner_id,
        "assignee_id": assignee_id,
        "title": "Write the report",
        "status": tasks_pb2.STATUS_TODO,
        "priority": tasks_pb2.PRIORITY_MEDIUM,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    return tasks_pb2.Task(**(fields | changes))


def notification_for(user_id: str) -> events_pb2.NotificationCreated:
    return events_pb2.NotificationCreated(
        user_id=user_id,
        notification=notifications_pb2.Notification(
            id=uuid.uuid4().hex[:24],
            type="task.assigned",
            title="A task for you",
            created_at=timestamp(time.time()),
        ),
    )


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_change_reaches_its_owner_and_assignee_and_nobody_else(
    gateway: Gateway, mint: Mint, publish: Publish, sockets: AsyncExitStack
) -> None:
    owner, assignee, stranger = mint(), mint(), mint()
    owner_socket = await sockets.enter_async_context(open_socket(gateway, owner))
    assignee_socket = await sockets.enter_async_context(
        open_socket(gateway, assignee, via="subprotocol")
    )
    stranger_socket = await sockets.enter_async_context(open_socket(gateway, stranger))

    created = task(owner.user_id, assignee.user_id)
    event_id = await publish("task.created", events_pb2.TaskCreated(task=created))
    # Sent after the task event: the stranger's first message proves they never got it.
    await publish("notification.created", notification_for(stranger.user_id))

    for ws in (owner_socket, assignee_socket):
        message = await received(ws)
        assert (message["type"], message["id"]) == ("task.created", event_id)
        assert message["data"]["id"] == created.id
        assert message["data"]["owner_id"] == owner.user_id
    assert (await received(stranger_socket))["type"] == "notification.created"


async def test_a_token_in_the_subprotocol_header_is_accepted_as_bearer(
    gateway: Gateway, mint: Mint, sockets: AsyncExitStack
) -> None:
    socket = await sockets.enter_async_context(open_socket(gateway, mint(), via="subprotocol"))

    assert socket.subprotocol == "bearer"


async def test_a_notification_reaches_its_recipient(
    gateway: Gateway, mint: Mint, publish: Publish, sockets: AsyncExitStack
) -> None:
    user = mint()
    socket = await sockets.enter_async_context(open_socket(gateway, user))

    payload = notification_for(user.user_id)
    await publish("notification.created", payload)

    message = await received(socket)
    assert message["type"] == "notification.created"
    assert message["data"]["id"] == payload.notification.id
    assert message["data"]["read"] is False


async def test_each_instance_pushes_every_change_to_its_own_sockets_within_a_second(
    start_gateway: StartGateway, mint: Mint, publish: Publish, sockets: AsyncExitStack
) -> None:
    first, second = await start_gateway(), await start_gateway()
    user = mint()
    on_first = await sockets.enter_async_context(open_socket(first, user))
    on_second = await sockets.enter_async_context(open_socket(second, user))
    queues = {
        first.app.state.realtime.stream.queue_name,
        second.app.state.realtime.stream.queue_name,
    }

    published = time.monotonic()
    event_id = await publish("task.updated", events_pb2.TaskUpdated(task=task(user.user_id)))
    messages = await asyncio.gather(received(on_first), received(on_second))
    elapsed = time.monotonic() - published

    assert [message["id"] for message in messages] == [event_id, event_id]
    assert elapsed < 1.0
    assert len(queues) == 2


async def test_client_messages_are_ignored(
    gateway: Gateway, mint: Mint, publish: Publish, sockets: AsyncExitStack
) -> None:
    user = mint()
    socket = await sockets.enter_async_context(open_socket(gateway, user))

    await socket.send("ping")
    await socket.send(b"\x00\x01")
    event_id = await publish("notification.created", notification_for(user.user_id))

    assert (await received(socket))["id"] == event_id


async def test_a_revoked_token_closes_its_socket_with_4001(
    gateway: Gateway, mint: Mint, redis: Redis, sockets: AsyncExitStack
) -> None:
    token = mint()
    socket = await sockets.enter_async_context(open_socket(gateway, token))

    await redis.set(revoked_token_key(token.token_id), "1", ex=60)

    assert await closed(socket, within_s=3) == (4001, "the access token has been revoked")


async def test_an_expiring_token_closes_its_socket_with_4001(
    gateway: Gateway, mint: Mint, sockets: AsyncExitStack
) -> None:
    socket = await sockets.enter_async_context(open_socket(gateway, mint(exp=time.time() + 1.5)))

    assert await closed(socket, within_s=4) == (4001, "the access token has expired")


async def refusal(gateway: Gateway, token: Token | None, **options: Any) -> InvalidStatus:
    """The HTTP answer to a handshake that must be refused."""
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(gateway, token, **options):
            pass
    return refused.value


async def test_a_handshake_without_a_token_is_401(gateway: Gateway) -> None:
    refused = await refusal(gateway, None)

    assert refused.response.status_code == 401
    assert refused.response.headers["WWW-Authenticate"] == "Bearer"
    assert refused.response.headers["Content-Type"] == "application/problem+json"
    assert json.loads(refused.response.body)["status"] == 401


@pytest.mark.parametrize("via", ["query", "subprotocol"])
async def test_a_handshake_with_a_bad_token_is_401_invalid_token(
    gateway: Gateway, mint: Mint, via: str
) -> None:
    header, payload, _ = mint().value.split(".")
    forged = Token(f"{header}.{payload}.{b64url(os.urandom(64))}", "someone", "jti")

    refused = await refusal(gateway, forged, via=via)

    assert refused.response.status_code == 401
    assert refused.response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


async def test_a_handshake_with_an_expired_token_is_401(gateway: Gateway, mint: Mint) -> None:
    expired = mint(iat=time.time() - 999, exp=time.time() - 60)

    refused = await refusal(gateway, expired)

    assert refused.response.status_code == 401
    assert "expired" in refused.response.headers["WWW-Authenticate"]


async def test_a_handshake_with_a_revoked_token_is_401(
    gateway: Gateway, mint: Mint, redis: Redis
) -> None:
    token = mint()
    await redis.set(revoked_token_key(token.token_id), "1", ex=60)

    refused = await refusal(gateway, token)

    assert refused.response.status_code == 401
    assert "revoked" in refused.response.headers["WWW-Authenticate"]


async def test_a_token_in_both_places_is_400(gateway: Gateway, mint: Mint) -> None:
    token = mint()
    url = f"{gateway.ws_url}?access_token={token.value}"

    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            url,
            subprotocols=["bearer", token.value],
            additional_headers={"X-Forwarded-For": fresh_ip()},
            open_timeout=5,
        ):
            pass

    assert refused.value.response.status_code == 400


async def test_the_handshake_is_charged_to_the_rate_limit(
    start_gateway: StartGateway, mint: Mint, sockets: AsyncExitStack
) -> None:
    gateway = await start_gateway(rate_limit_user_per_min=1)
    token = mint()
    socket = await sockets.enter_async_context(open_socket(gateway, token))

    refused = await refusal(gateway, token)

    assert socket.response is not None
    assert socket.response.headers["RateLimit"] == '"user";r=0;t=60'
    assert refused.response.status_code == 429
    assert int(refused.response.headers["Retry-After"]) >= 1


async def test_redis_down_refuses_the_handshake_with_503(
    start_gateway: StartGateway, mint: Mint
) -> None:
    gateway = await start_gateway(redis_url=f"redis://127.0.0.1:{find_free_port()}/0")

    refused = await refusal(gateway, mint())

    assert refused.response.status_code == 503
    assert refused.response.headers["Retry-After"] == "5"


async def test_a_token_in_the_query_string_reaches_no_log_line(
    gateway: Gateway, mint: Mint, sockets: AsyncExitStack
) -> None:
    logs = capture_logs("gateway")
    accepted, expired = mint(), mint(iat=time.time() - 999, exp=time.time() - 60)

    await sockets.enter_async_context(open_socket(gateway, accepted))
    await refusal(gateway, expired)

    events = [str(line.get("event")) for line in logs.lines()]
    # uvicorn logs every handshake with its path and query; the gateway took the token out.
    assert any(event.endswith('"WebSocket /api/v1/ws" [accepted]') for event in events)
    assert any(event.endswith('"WebSocket /api/v1/ws" 401') for event in events)
    # What the gateway logs; the test's own client (websockets.client) is not the gateway.
    everything = json.dumps(
        [line for line in logs.lines() if not line.get("logger", "").startswith("websockets.")]
    )
    for token in (accepted, expired):
        assert token.value.split(".")[2] not in everything
    assert "access_token=[redacted]" in everything  # uvicorn's raw request line, at DEBUG


class RawSocket:
    """A WebSocket client that does the handshake, then reads only when told to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, gateway: Gateway, token: Token, *, receive_buffer: int = 0) -> RawSocket:
        raw = socket.socket()
        if receive_buffer:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(
            raw, ("127.0.0.1", gateway.settings.gateway_port)
        )
        reader, writer = await asyncio.open_connection(sock=raw)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /api/v1/ws?access_token={token.value} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{gateway.settings.gateway_port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"X-Forwarded-For: {fresh_ip()}\r\n\r\n"
            ).encode()
        )
        status = await reader.readuntil(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101"), status
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes]:
        """The next frame from the server: opcode and payload (servers do not mask)."""
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2))
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.transport.abort()


async def test_a_client_that_answers_no_ping_is_closed_with_1011(
    start_gateway: StartGateway, mint: Mint
) -> None:
    gateway = await start_gateway(ws_ping_interval_s=0.2, ws_ping_timeout_s=0.3)
    client = await RawSocket.open(gateway, mint())
    try:
        ping = await asyncio.wait_for(client.frame(), 2)
        close = await asyncio.wait_for(client.frame(), 2)
    finally:
        client.close()

    assert ping[0] == 0x9
    assert close[0] == 0x8
    assert int.from_bytes(close[1][:2]) == 1011


async def test_a_slow_client_is_dropped_without_slowing_the_others(
    start_gateway: StartGateway, mint: Mint, publish: Publish, sockets: AsyncExitStack
) -> None:
    gateway = await start_gateway(ws_send_queue_size=16)
    user = mint()
    hub = gateway.app.state.realtime.hub
    dropped_before = metric("taskmesh_websocket_dropped_total", reason="slow_client")
    stalled = await RawSocket.open(gateway, user, receive_buffer=4096)
    [stalled_socket] = hub.subscribers()
    reader = await sockets.enter_async_context(open_socket(gateway, user, max_size=2**20))

    # Incompressible 60 kB messages: a few megabytes fill the stalled client's buffers, then
    # its queue; the reader gets each message as it comes all along.
    slowest_s = 0.0
    try:
        for _ in range(400):
            payload = events_pb2.TaskUpdated(
                task=task(user.user_id, description=secrets.token_hex(30_000))
            )
            published = time.monotonic()
            event_id = await publish("task.updated", payload)
            assert (await received(reader))["id"] == event_id
            slowest_s = max(slowest_s, time.monotonic() - published)
            if stalled_socket.closing.done():
                break
        # Its close frame cannot get through either: the session gives up after a while.
        await eventually(lambda: len(hub.subscribers()) == 1, timeout_s=5, what="the drop")
    finally:
        stalled.close()

    assert stalled_socket.closing.result() == SLOW_CLIENT
    assert metric("taskmesh_websocket_dropped_total", reason="slow_client") == dropped_before + 1
    assert slowest_s < 1.0


async def test_the_event_stream_resubscribes_after_the_broker_drops_its_connection(
    gateway: Gateway,
    mint: Mint,
    publish: Publish,
    sockets: AsyncExitStack,
    drop_broker_connection: DropConnection,
) -> None:
    user = mint()
    socket = await sockets.enter_async_context(open_socket(gateway, user))
    stream = gateway.app.state.realtime.stream
    before = stream.queue_name

    await drop_broker_connection(f"gateway {gateway.settings.instance_name}")
    await eventually(
        lambda: stream.queue_name != before and stream.subscribed.is_set(),
        timeout_s=30,
        what="a new subscription",
    )
    event_id = await publish("notification.created", notification_for(user.user_id))

    assert (await received(socket))["id"] == event_id
