"""The /api/v1/notifications routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.notifications.v1 import notifications_pb2
from taskmesh_chassis.identity import Caller
from taskmesh_gateway.app import create_app
from taskmesh_gateway.dependencies import get_current_user
from taskmesh_gateway.schemas.auth import Role
from taskmesh_gateway.settings import GatewaySettings

NOTIFICATION_ID = "65f0c0ffee0000000000ffff"
CREATED = datetime(2026, 11, 28, 9, 42, 14, 123000, tzinfo=UTC)


class FakeNotificationsService:
    """Answers like the notifications service with one unread notification."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    async def ListNotifications(
        self, request: notifications_pb2.ListNotificationsRequest
    ) -> notifications_pb2.ListNotificationsResponse:
        self.requests.append(request)
        created_at = Timestamp()
        created_at.FromDatetime(CREATED)
        notification = notifications_pb2.Notification(
            id=NOTIFICATION_ID,
            type="task.assigned",
            title="New task",
            body="Ada assigned you a task",
            read=False,
            created_at=created_at,
        )
        return notifications_pb2.ListNotificationsResponse(
            notifications=[notification], page={"next_cursor": "next"}
        )

    async def MarkRead(self, request: notifications_pb2.MarkReadRequest) -> Empty:
        self.requests.append(request)
        return Empty()

    async def MarkAllRead(self, request: notifications_pb2.MarkAllReadRequest) -> Empty:
        self.requests.append(request)
        return Empty()


class ServiceClientsStandIn:
    def __init__(self, notifications: FakeNotificationsService) -> None:
        self.notifications = notifications


@pytest.fixture
def notifications_service() -> FakeNotificationsService:
    return FakeNotificationsService()


@pytest.fixture
def app(notifications_service: FakeNotificationsService, open_gate: Any) -> FastAPI:
    app = create_app(GatewaySettings())
    app.state.clients = ServiceClientsStandIn(notifications_service)
    app.state.gatekeeper = open_gate
    return app


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    caller = Caller(
        "u1", Role.user, "jti-1", "sid-1", CREATED.timestamp() - 900, CREATED.timestamp(), "token-1"
    )
    app.dependency_overrides[get_current_user] = lambda: caller
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def test_notifications_without_a_token_are_401(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/api/v1/notifications")

    assert response.status_code == 401


async def test_list_notifications_converts_the_page(
    client: httpx.AsyncClient, notifications_service: FakeNotificationsService
) -> None:
    response = await client.get("/api/v1/notifications", params={"unread": "true", "limit": 10})

    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {
                "id": NOTIFICATION_ID,
                "type": "task.assigned",
                "title": "New task",
                "body": "Ada assigned you a task",
                "task_id": None,
                "read": False,
                "created_at": "2026-11-28T09:42:14.123Z",
            }
        ],
        "next_cursor": "next",
    }
    (request,) = notifications_service.requests
    assert request.unread_only
    assert request.page.limit == 10


async def test_list_notifications_with_limit_0_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/notifications?limit=0")

    assert response.status_code == 422


async def test_mark_read_is_204(
    client: httpx.AsyncClient, notifications_service: FakeNotificationsService
) -> None:
    response = await client.post(f"/api/v1/notifications/{NOTIFICATION_ID}/read")

    assert response.status_code == 204
    assert notifications_service.requests == [
        notifications_pb2.MarkReadRequest(notification_id=NOTIFICATION_ID)
    ]


async def test_mark_all_read_is_204(
    client: httpx.AsyncClient, notifications_service: FakeNotificationsService
) -> None:
    response = await client.post("/api/v1/notifications/read-all")

    assert response.status_code == 204
    assert notifications_service.requests == [notifications_pb2.MarkAllReadRequest()]
