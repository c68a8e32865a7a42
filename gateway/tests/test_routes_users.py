"""The /api/v1/users routes: the caller's profile, assignee lookup, administration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.common.v1 import common_pb2
from taskmesh.users.v1 import users_pb2
from taskmesh_chassis.identity import Caller
from taskmesh_gateway.app import create_app
from taskmesh_gateway.dependencies import get_current_user
from taskmesh_gateway.schemas.auth import Role
from taskmesh_gateway.settings import GatewaySettings

USER_ID = "65f0c0ffee0000000000bbbb"
OTHER_ID = "65f0c0ffee0000000000eeee"
CREATED = datetime(2026, 11, 28, 9, 42, 14, 123000, tzinfo=UTC)


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def stored_profile(user_id: str = USER_ID) -> users_pb2.Profile:
    created_at = Timestamp()
    created_at.FromDatetime(CREATED)
    return users_pb2.Profile(
        id=user_id,
        email="ada@example.com",
        name="Ada",
        bio="",
        timezone="UTC",
        email_notifications=True,
        role=common_pb2.ROLE_USER,
        active=True,
        created_at=created_at,
        updated_at=created_at,
    )


class FakeUsersService:
    """Answers like the users service; `error`, when set, fails every call."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.error: grpc.aio.AioRpcError | None = None

    def _record(self, request: Any) -> None:
        self.requests.append(request)
        if self.error is not None:
            raise self.error

    async def GetProfile(self, request: users_pb2.GetProfileRequest) -> users_pb2.Profile:
        self._record(request)
        return stored_profile()

    async def UpdateProfile(self, request: users_pb2.UpdateProfileRequest) -> users_pb2.Profile:
        self._record(request)
        return stored_profile()

    async def DeleteMe(self, request: users_pb2.DeleteMeRequest) -> Empty:
        self._record(request)
        return Empty()

    async def LookupByEmail(self, request: users_pb2.LookupByEmailRequest) -> users_pb2.UserSummary:
        self._record(request)
        return users_pb2.UserSummary(id=OTHER_ID, name="Grace")

    async def ListUsers(self, request: users_pb2.ListUsersRequest) -> users_pb2.ListUsersResponse:
        self._record(request)
        return users_pb2.ListUsersResponse(profiles=[stored_profile(OTHER_ID)])

    async def GetUser(self, request: users_pb2.GetUserRequest) -> users_pb2.Profile:
        self._record(request)
        return stored_profile(request.user_id)

    async def UpdateUser(self, request: users_pb2.UpdateUserRequest) -> users_pb2.Profile:
        self._record(request)
        return stored_profile(request.user_id)

    async def DeleteUser(self, request: users_pb2.DeleteUserRequest) -> Empty:
        self._record(request)
        return Empty()


class ServiceClientsStandIn:
    def __init__(self, users: FakeUsersService) -> None:
        self.users = users


@pytest.fixture
def users_service() -> FakeUsersService:
    return FakeUsersService()


@pytest.fixture
def app(users_service: FakeUsersService, open_gate: Any) -> FastAPI:
    app = create_app(GatewaySettings())
    app.state.clients = ServiceClientsStandIn(users_service)
    app.state.gatekeeper = open_gate
    return app


def sign_in(app: FastAPI, role: Role) -> None:
    caller = Caller(
        USER_ID, role, "jti-1", "sid-1", CREATED.timestamp() - 900, CREATED.timestamp(), "token-1"
    )
    app.dependency_overrides[get_current_user] = lambda: caller


@pytest.fixture
def as_user(app: FastAPI) -> None:
    sign_in(app, Role.user)


@pytest.fixture
def as_admin(app: FastAPI) -> None:
    sign_in(app, Role.admin)


async def test_my_profile_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.usefixtures("as_user")
async def test_my_profile_is_converted_from_the_service(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/me")

    assert response.status_code == 200
    assert response.json() == {
        "id": USER_ID,
        "email": "ada@example.com",
        "name": "Ada",
        "bio": "",
        "timezone": "UTC",
        "email_notifications": True,
        "role": "user",
        "active": True,
        "created_at": "2026-11-28T09:42:14.123Z",
        "updated_at": "2026-11-28T09:42:14.123Z",
    }


@pytest.mark.usefixtures("as_user")
async def test_profile_update_sends_only_the_given_fields(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    response = await client.patch(
        "/api/v1/users/me", json={"timezone": "Europe/Paris", "email_notifications": False}
    )

    assert response.status_code == 200
    (request,) = users_service.requests
    assert request.timezone == "Europe/Paris"
    assert request.HasField("email_notifications")
    assert not request.email_notifications
    assert not request.HasField("name")
    assert not request.HasField("bio")


@pytest.mark.usefixtures("as_user")
@pytest.mark.parametrize(
    "body",
    [
        {"name": None},
        {"name": "  "},
        {"bio": "x" * 501},
        {"timezone": "Mars/Olympus_Mons"},
        {"role": "admin"},
    ],
)
async def test_profile_update_rejects_invalid_bodies_with_422(
    client: httpx.AsyncClient, users_service: FakeUsersService, body: dict[str, Any]
) -> None:
    response = await client.patch("/api/v1/users/me", json=body)

    assert response.status_code == 422
    assert users_service.requests == []


@pytest.mark.usefixtures("as_user")
async def test_delete_me_is_204(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/users/me")

    assert response.status_code == 204


@pytest.mark.usefixtures("as_user")
async def test_lookup_answers_id_and_name(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    response = await client.get("/api/v1/users/lookup", params={"email": "Grace@Example.com"})

    assert response.status_code == 200
    assert response.json() == {"id": OTHER_ID, "name": "Grace"}
    assert users_service.requests == [users_pb2.LookupByEmailRequest(email="Grace@Example.com")]


@pytest.mark.usefixtures("as_user")
async def test_lookup_of_an_unknown_email_is_404(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    users_service.error = rpc_error(grpc.StatusCode.NOT_FOUND, "no such user")

    response = await client.get("/api/v1/users/lookup", params={"email": "nobody@example.com"})

    assert response.status_code == 404


@pytest.mark.usefixtures("as_user")
async def test_listing_users_is_403_for_non_admins(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    response = await client.get("/api/v1/users")

    assert response.status_code == 403
    assert users_service.requests == []


@pytest.mark.usefixtures("as_admin")
async def test_listing_users_passes_the_filters(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    response = await client.get(
        "/api/v1/users", params={"q": "ada", "role": "admin", "active": "false", "limit": 3}
    )

    assert response.status_code == 200
    assert response.json()["next_cursor"] is None
    assert [item["id"] for item in response.json()["items"]] == [OTHER_ID]
    (request,) = users_service.requests
    assert request.q == "ada"
    assert request.role == common_pb2.ROLE_ADMIN
    assert request.HasField("active")
    assert not request.active
    assert request.page.limit == 3


@pytest.mark.usefixtures("as_admin")
@pytest.mark.parametrize("query", ["limit=0", "role=owner", "active=perhaps"])
async def test_listing_users_rejects_values_outside_their_set(
    client: httpx.AsyncClient, query: str
) -> None:
    response = await client.get(f"/api/v1/users?{query}")

    assert response.status_code == 422


@pytest.mark.usefixtures("as_admin")
async def test_admin_reads_a_user(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/users/{OTHER_ID}")

    assert response.status_code == 200
    assert response.json()["id"] == OTHER_ID


@pytest.mark.usefixtures("as_admin")
async def test_admin_update_sends_role_and_active(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    response = await client.patch(f"/api/v1/users/{OTHER_ID}", json={"role": "admin"})

    assert response.status_code == 200
    (request,) = users_service.requests
    assert request.user_id == OTHER_ID
    assert request.role == common_pb2.ROLE_ADMIN
    assert not request.HasField("active")


@pytest.mark.usefixtures("as_admin")
async def test_admin_demoting_themself_is_409(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    users_service.error = rpc_error(grpc.StatusCode.ABORTED, "admins cannot demote themselves")

    response = await client.patch(f"/api/v1/users/{USER_ID}", json={"role": "user"})

    assert response.status_code == 409


@pytest.mark.usefixtures("as_admin")
async def test_admin_update_with_a_profile_field_is_422(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"/api/v1/users/{OTHER_ID}", json={"name": "Eve"})

    assert response.status_code == 422


@pytest.mark.usefixtures("as_admin")
async def test_admin_deletes_a_user(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    response = await client.delete(f"/api/v1/users/{OTHER_ID}")

    assert response.status_code == 204
    assert users_service.requests == [users_pb2.DeleteUserRequest(user_id=OTHER_ID)]
