"""The /api/v1/users routes: the caller's profile, assignee lookup, administration.

Profiles come from the users service; role, active flag and the account itself are auth's,
so account changes and deletions go to auth.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.auth.v1 import auth_pb2
from taskmesh.common.v1 import common_pb2
from taskmesh.users.v1 import users_pb2
from taskmesh_chassis.identity import Caller
from taskmesh_gateway.app import create_app
from taskmesh_gateway.dependencies import get_current_user
from taskmesh_gateway.schemas.auth import Role
from taskmesh_gateway.settings import GatewaySettings

from .conftest import OpenGate, rpc_error

USER_ID = "65f0c0ffee0000000000bbbb"
OTHER_ID = "65f0c0ffee0000000000eeee"
CREATED = datetime(2026, 11, 28, 9, 42, 14, 123000, tzinfo=UTC)


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def stored_profile(user_id: str = USER_ID) -> users_pb2.Profile:
    return users_pb2.Profile(
        id=user_id,
        email="ada@example.com",
        name="Ada",
        bio="",
        timezone="UTC",
        email_notifications=True,
        role=common_pb2.ROLE_USER,
        active=True,
        created_at=timestamp(CREATED),
        updated_at=timestamp(CREATED),
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

    async def LookupByEmail(self, request: users_pb2.LookupByEmailRequest) -> users_pb2.UserSummary:
        self._record(request)
        return users_pb2.UserSummary(id=OTHER_ID, name="Grace")

    async def ListUsers(self, request: users_pb2.ListUsersRequest) -> users_pb2.ListUsersResponse:
        self._record(request)
        return users_pb2.ListUsersResponse(profiles=[stored_profile(OTHER_ID)])

    async def GetUser(self, request: users_pb2.GetUserRequest) -> users_pb2.Profile:
        self._record(request)
        return stored_profile(request.user_id)


class FakeAuthService:
    """Answers auth's administration RPCs for an active user; `error` fails every call."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.error: grpc.aio.AioRpcError | None = None

    def _record(self, request: Any) -> None:
        self.requests.append(request)
        if self.error is not None:
            raise self.error

    async def UpdateUser(self, request: auth_pb2.UpdateUserRequest) -> auth_pb2.User:
        self._record(request)
        return auth_pb2.User(
            id=request.user_id,
            email="ada@example.com",
            role=request.role if request.HasField("role") else common_pb2.ROLE_USER,
            active=request.active if request.HasField("active") else True,
            created_at=timestamp(CREATED),
        )

    async def DeleteUser(self, request: auth_pb2.DeleteUserRequest) -> Empty:
        self._record(request)
        return Empty()


class ServiceClientsStandIn:
    def __init__(self, auth: FakeAuthService, users: FakeUsersService) -> None:
        self.auth = auth
        self.users = users


@pytest.fixture
def users_service() -> FakeUsersService:
    return FakeUsersService()


@pytest.fixture
def auth_service() -> FakeAuthService:
    return FakeAuthService()


@pytest.fixture
def app(
    auth_service: FakeAuthService, users_service: FakeUsersService, open_gate: OpenGate
) -> FastAPI:
    app = create_app(GatewaySettings())
    app.state.clients = ServiceClientsStandIn(auth_service, users_service)
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


# --- the caller's own profile ---------------------------------------------------------------


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
async def test_my_profile_missing_in_the_service_is_404(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    users_service.error = rpc_error(grpc.StatusCode.NOT_FOUND, "no profile")

    response = await client.get("/api/v1/users/me")

    assert response.status_code == 404


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
async def test_profile_update_trims_the_name(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    response = await client.patch("/api/v1/users/me", json={"name": "  Ada Lovelace ", "bio": ""})

    assert response.status_code == 200
    assert users_service.requests == [users_pb2.UpdateProfileRequest(name="Ada Lovelace", bio="")]


@pytest.mark.usefixtures("as_user")
@pytest.mark.parametrize(
    "body",
    [
        {"name": None},
        {"name": "  "},
        {"name": "x" * 101},
        {"bio": "x" * 501},
        {"timezone": "Mars/Olympus_Mons"},
        {"email_notifications": "sometimes"},
        {"email_notifications": "no"},
        {"email_notifications": 0},
        {"role": "admin"},
        {"active": False},
        {"favourite_colour": "green"},
    ],
)
async def test_profile_update_rejects_invalid_bodies_with_422(
    client: httpx.AsyncClient, users_service: FakeUsersService, body: dict[str, Any]
) -> None:
    response = await client.patch("/api/v1/users/me", json=body)

    assert response.status_code == 422
    assert users_service.requests == []


@pytest.mark.usefixtures("as_user")
async def test_delete_me_deletes_the_callers_account_in_auth(
    client: httpx.AsyncClient, auth_service: FakeAuthService, users_service: FakeUsersService
) -> None:
    response = await client.delete("/api/v1/users/me")

    assert response.status_code == 204
    assert response.content == b""
    assert auth_service.requests == [auth_pb2.DeleteUserRequest(user_id=USER_ID)]
    assert users_service.requests == []


@pytest.mark.usefixtures("as_admin")
async def test_delete_me_of_the_last_active_admin_is_409(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.ABORTED, "the last active admin must stay")

    response = await client.delete("/api/v1/users/me")

    assert response.status_code == 409
    assert response.json()["detail"] == "the last active admin must stay"


async def test_delete_me_without_a_token_is_401(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    response = await client.delete("/api/v1/users/me")

    assert response.status_code == 401
    assert auth_service.requests == []


# --- assignee lookup ------------------------------------------------------------------------


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
@pytest.mark.parametrize("query", ["", "?email=", "?email=%20%20"])
async def test_lookup_without_an_email_is_422(
    client: httpx.AsyncClient, users_service: FakeUsersService, query: str
) -> None:
    response = await client.get(f"/api/v1/users/lookup{query}")

    assert response.status_code == 422
    assert users_service.requests == []


# --- administration -------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("GET", "/api/v1/users", None),
    ("GET", f"/api/v1/users/{OTHER_ID}", None),
    ("PATCH", f"/api/v1/users/{OTHER_ID}", {"role": "admin"}),
    ("DELETE", f"/api/v1/users/{OTHER_ID}", None),
]


@pytest.mark.usefixtures("as_user")
@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_are_403_for_non_admins(
    client: httpx.AsyncClient,
    auth_service: FakeAuthService,
    users_service: FakeUsersService,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    response = await client.request(method, path, json=body)

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert (auth_service.requests, users_service.requests) == ([], [])


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_are_401_without_a_token(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = await client.request(method, path, json=body)

    assert response.status_code == 401


@pytest.mark.usefixtures("as_admin")
async def test_listing_users_passes_the_filters(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    response = await client.get(
        "/api/v1/users",
        params={"q": "ada", "role": "admin", "active": "false", "limit": 3, "cursor": "c-1"},
    )

    assert response.status_code == 200
    assert response.json()["next_cursor"] is None
    assert [item["id"] for item in response.json()["items"]] == [OTHER_ID]
    (request,) = users_service.requests
    assert request.q == "ada"
    assert request.role == common_pb2.ROLE_ADMIN
    assert request.HasField("active")
    assert not request.active
    assert (request.page.limit, request.page.cursor) == (3, "c-1")


@pytest.mark.usefixtures("as_admin")
async def test_listing_users_without_filters_matches_everyone(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    response = await client.get("/api/v1/users")

    assert response.status_code == 200
    (request,) = users_service.requests
    assert (request.q, request.role, request.page.limit) == ("", common_pb2.ROLE_UNSPECIFIED, 20)
    assert not request.HasField("active")


@pytest.mark.usefixtures("as_admin")
@pytest.mark.parametrize("query", ["limit=0", "limit=101", "role=owner", "active=perhaps"])
async def test_listing_users_rejects_values_outside_their_set(
    client: httpx.AsyncClient, users_service: FakeUsersService, query: str
) -> None:
    response = await client.get(f"/api/v1/users?{query}")

    assert response.status_code == 422
    assert users_service.requests == []


@pytest.mark.usefixtures("as_admin")
async def test_admin_reads_a_user(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    response = await client.get(f"/api/v1/users/{OTHER_ID}")

    assert response.status_code == 200
    assert response.json()["id"] == OTHER_ID
    assert users_service.requests == [users_pb2.GetUserRequest(user_id=OTHER_ID)]


@pytest.mark.usefixtures("as_admin")
async def test_reading_an_unknown_user_is_404(
    client: httpx.AsyncClient, users_service: FakeUsersService
) -> None:
    users_service.error = rpc_error(grpc.StatusCode.NOT_FOUND, "no such user")

    response = await client.get(f"/api/v1/users/{OTHER_ID}")

    assert response.status_code == 404


@pytest.mark.usefixtures("as_admin")
async def test_admin_update_changes_the_standing_in_auth(
    client: httpx.AsyncClient, auth_service: FakeAuthService, users_service: FakeUsersService
) -> None:
    response = await client.patch(f"/api/v1/users/{OTHER_ID}", json={"role": "admin"})

    assert response.status_code == 200
    (request,) = auth_service.requests
    assert request.user_id == OTHER_ID
    assert request.role == common_pb2.ROLE_ADMIN
    assert not request.HasField("active")
    assert users_service.requests == [users_pb2.GetUserRequest(user_id=OTHER_ID)]


@pytest.mark.usefixtures("as_admin")
async def test_admin_update_answers_the_new_role_and_active_before_the_profile_copy_follows(
    client: httpx.AsyncClient,
) -> None:
    # The users service still holds role "user" and active true: its copy follows by event.
    response = await client.patch(
        f"/api/v1/users/{OTHER_ID}", json={"role": "admin", "active": False}
    )

    assert response.status_code == 200
    assert response.json() == {
        "id": OTHER_ID,
        "email": "ada@example.com",
        "name": "Ada",
        "bio": "",
        "timezone": "UTC",
        "email_notifications": True,
        "role": "admin",
        "active": False,
        "created_at": "2026-11-28T09:42:14.123Z",
        "updated_at": "2026-11-28T09:42:14.123Z",
    }


@pytest.mark.usefixtures("as_admin")
async def test_admin_update_sends_active_alone(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    response = await client.patch(f"/api/v1/users/{OTHER_ID}", json={"active": False})

    assert response.status_code == 200
    (request,) = auth_service.requests
    assert request.HasField("active")
    assert not request.active
    assert not request.HasField("role")


@pytest.mark.usefixtures("as_admin")
@pytest.mark.parametrize(
    ("details", "body"),
    [
        ("admins cannot demote or deactivate themselves", {"role": "user"}),
        ("the last active admin must stay", {"active": False}),
    ],
)
async def test_admin_update_refused_by_auth_is_409(
    client: httpx.AsyncClient,
    auth_service: FakeAuthService,
    users_service: FakeUsersService,
    details: str,
    body: dict[str, Any],
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.ABORTED, details)

    response = await client.patch(f"/api/v1/users/{USER_ID}", json=body)

    assert response.status_code == 409
    assert response.json()["detail"] == details
    assert users_service.requests == []


@pytest.mark.usefixtures("as_admin")
async def test_admin_update_of_an_unknown_user_is_404(
    client: httpx.AsyncClient, auth_service: FakeAuthService, users_service: FakeUsersService
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.NOT_FOUND, "no such user")

    response = await client.patch(f"/api/v1/users/{OTHER_ID}", json={"active": False})

    assert response.status_code == 404
    assert users_service.requests == []


@pytest.mark.usefixtures("as_admin")
@pytest.mark.parametrize(
    "body",
    [
        {"name": "Eve"},
        {"role": "owner"},
        {"role": None},
        {"active": "perhaps"},
        {"active": "no"},
        {"active": "false"},
        {"active": 0},
    ],
)
async def test_admin_update_with_an_invalid_body_is_422(
    client: httpx.AsyncClient, auth_service: FakeAuthService, body: dict[str, Any]
) -> None:
    response = await client.patch(f"/api/v1/users/{OTHER_ID}", json=body)

    assert response.status_code == 422
    assert auth_service.requests == []


@pytest.mark.usefixtures("as_admin")
async def test_admin_deletes_a_user_in_auth(
    client: httpx.AsyncClient, auth_service: FakeAuthService, users_service: FakeUsersService
) -> None:
    response = await client.delete(f"/api/v1/users/{OTHER_ID}")

    assert response.status_code == 204
    assert auth_service.requests == [auth_pb2.DeleteUserRequest(user_id=OTHER_ID)]
    assert users_service.requests == []


@pytest.mark.usefixtures("as_admin")
async def test_deleting_an_unknown_user_is_404(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.NOT_FOUND, "no such user")

    response = await client.delete(f"/api/v1/users/{OTHER_ID}")

    assert response.status_code == 404
