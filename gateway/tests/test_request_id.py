"""Every response carries X-Request-ID, and the id travels to the services as gRPC metadata."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
from fastapi import FastAPI
from starlette.types import Message
from taskmesh_gateway.clients import SERVICE_DESCRIPTORS
from taskmesh_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import HealthServers, LifespanClient


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "req-42.retry_1"})

    assert response.headers["x-request-id"] == "req-42.retry_1"


async def test_insane_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": 'bad id";<script>'})

    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_request_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")

    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_error_problem_carries_the_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/route", headers={"X-Request-ID": "trace-me"})

    assert response.headers["x-request-id"] == "trace-me"
    assert response.json()["request_id"] == "trace-me"


async def test_websocket_handshake_carries_the_request_id(app: FastAPI) -> None:
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/_probe/ws",
        "raw_path": b"/_probe/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"x-request-id", b"socket-1")],
        "client": ("127.0.0.1", 50000),
        "server": ("gateway", 80),
        "subprotocols": [],
    }
    incoming: list[Message] = [{"type": "websocket.connect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)

    [accept] = [message for message in sent if message["type"] == "websocket.accept"]
    assert (b"x-request-id", b"socket-1") in accept["headers"]


async def test_request_id_forwarded_as_grpc_metadata(
    settings: GatewaySettings,
    health_servers: HealthServers,
    all_services: list[str],
    started_gateway: LifespanClient,
) -> None:
    target, health = await health_servers.start(serving=all_services)
    every_target = {f"{name}_grpc_target": target for name in SERVICE_DESCRIPTORS}
    client = await started_gateway(settings.model_copy(update=every_target))

    await client.get("/readyz", headers={"X-Request-ID": "forward-me-7"})

    assert len(health.metadata) == len(SERVICE_DESCRIPTORS)
    assert {call.get("x-request-id") for call in health.metadata} == {"forward-me-7"}
