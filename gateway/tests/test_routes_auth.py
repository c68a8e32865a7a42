"""The /api/v1/auth routes and the JWKS document."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY
from taskmesh.auth.v1 import auth_pb2
from taskmesh.common.v1 import common_pb2
from taskmesh_chassis.identity import Caller
from taskmesh_gateway.app import create_app
from taskmesh_gateway.dependencies import get_current_user
from taskmesh_gateway.schemas.auth import Role
from taskmesh_gateway.settings import GatewaySettings

USER_ID = "65f0c0ffee0000000000bbbb"
CREATED = datetime(2026, 11, 28, 9, 42, 14, 123000, tzinfo=UTC)
EXPIRES = datetime(2026, 11, 28, 9, 57, 14, tzinfo=UTC)


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def stored_user() -> auth_pb2.User:
    created_at = Timestamp()
    created_at.FromDatetime(CREATED)
    return auth_pb2.User(
        id=USER_ID,
        email="ada@example.com",
        role=common_pb2.ROLE_USER,
        active=True,
        created_at=created_at,
    )


def issued_tokens(refresh_token: str = "refresh-1") -> auth_pb2.Tokens:
    return auth_pb2.Tokens(
        access_token="access-1", refresh_token=refresh_token, token_type="bearer", expires_in=900
    )


class FakeAuthService:
    """Answers like the auth service; `error`, when set, fails every call."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.error: grpc.aio.AioRpcError | None = None

    def _record(self, request: Any) -> None:
        self.requests.append(request)
        if self.error is not None:
            raise self.error

    async def Register(self, request: auth_pb2.RegisterRequest) -> auth_pb2.RegisterResponse:
        self._record(request)
        return auth_pb2.RegisterResponse(user=stored_user(), tokens=issued_tokens())

    async def Login(self, request: auth_pb2.LoginRequest) -> auth_pb2.Tokens:
        self._record(request)
        return issued_tokens()

    async def Refresh(self, request: auth_pb2.RefreshRequest) -> auth_pb2.Tokens:
        self._record(request)
        return issued_tokens("refresh-2")

    async def Logout(self, request: auth_pb2.LogoutRequest) -> Empty:
        self._record(request)
        return Empty()

    async def GetMe(self, request: auth_pb2.GetMeRequest) -> auth_pb2.User:
        self._record(request)
        return stored_user()

    async def ChangePassword(self, request: auth_pb2.ChangePasswordRequest) -> Empty:
        self._record(request)
        return Empty()

    async def ForgotPassword(self, request: auth_pb2.ForgotPasswordRequest) -> Empty:
        self._record(request)
        return Empty()

    async def ResetPassword(self, request: auth_pb2.ResetPasswordRequest) -> Empty:
        self._record(request)
        return Empty()

    async def GetJwks(self, request: auth_pb2.GetJwksRequest) -> auth_pb2.Jwks:
        self._record(request)
        key = auth_pb2.Jwk(kid="k1", kty="OKP", alg="EdDSA", use="sig", crv="Ed25519", x="AAAA")
        return auth_pb2.Jwks(keys=[key])


class ServiceClientsStandIn:
    def __init__(self, auth: FakeAuthService) -> None:
        self.auth = auth


@pytest.fixture
def auth_service() -> FakeAuthService:
    return FakeAuthService()


@pytest.fixture
def app(auth_service: FakeAuthService, open_gate: Any, login_guard: Any, me_cache: Any) -> FastAPI:
    app = create_app(GatewaySettings())
    app.state.clients = ServiceClientsStandIn(auth_service)
    app.state.gatekeeper = open_gate
    app.state.login_guard = login_guard
    app.state.me_cache = me_cache
    return app


@pytest.fixture
def signed_in(app: FastAPI) -> Caller:
    caller = Caller(
        USER_ID,
        Role.user,
        "jti-1",
        "sid-1",
        EXPIRES.timestamp() - 900,
        EXPIRES.timestamp(),
        "token-1",
    )
    app.dependency_overrides[get_current_user] = lambda: caller
    return caller


REGISTRATION = {"email": "ada@example.com", "password": "correct horse", "name": " Ada "}


async def test_register_answers_201_with_the_user_and_tokens(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    response = await client.post("/api/v1/auth/register", json=REGISTRATION)

    assert response.status_code == 201
    assert response.json() == {
        "user": {
            "id": USER_ID,
            "email": "ada@example.com",
            "role": "user",
            "active": True,
            "created_at": "2026-11-28T09:42:14.123Z",
        },
        "access_token": "access-1",
        "refresh_token": "refresh-1",
        "token_type": "bearer",
        "expires_in": 900,
    }
    assert auth_service.requests == [
        auth_pb2.RegisterRequest(email="ada@example.com", password="correct horse", name="Ada")
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {"email": "not-an-email"},
        {"email": "ada@localhost"},
        {"password": "short"},
        {"password": "x" * 129},
        {"password": "ADA@example.com"},
        {"name": "   "},
        {"name": "x" * 101},
        {"nickname": "ada"},
    ],
)
async def test_register_rejects_invalid_bodies_with_422(
    client: httpx.AsyncClient, auth_service: FakeAuthService, changes: dict[str, str]
) -> None:
    response = await client.post("/api/v1/auth/register", json=REGISTRATION | changes)

    assert response.status_code == 422
    assert auth_service.requests == []


async def test_register_with_a_taken_email_is_409(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.ALREADY_EXISTS, "email already registered")

    response = await client.post("/api/v1/auth/register", json=REGISTRATION)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"


async def test_register_with_refresh_cookie_keeps_the_refresh_token_out_of_the_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/v1/auth/register?refresh_cookie=true", json=REGISTRATION)

    assert response.status_code == 201
    assert "refresh_token" not in response.json()
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("refresh_token=refresh-1;")
    assert "HttpOnly" in cookie
    assert "Path=/api/v1/auth" in cookie
    assert "SameSite=strict" in cookie


async def test_login_answers_tokens(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": "correct horse"}
    )

    assert response.status_code == 200
    assert response.json()["access_token"] == "access-1"
    assert response.json()["token_type"] == "bearer"


async def test_login_with_wrong_credentials_is_401(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")

    response = await client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": "wrong password"}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_token_endpoint_takes_the_oauth2_password_form(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    response = await client.post(
        "/api/v1/auth/token",
        data={"username": "ada@example.com", "password": "correct horse"},
    )

    assert response.status_code == 200
    assert auth_service.requests == [
        auth_pb2.LoginRequest(email="ada@example.com", password="correct horse")
    ]


async def test_refresh_with_a_body_token(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": "refresh-1"})

    assert response.status_code == 200
    assert response.json()["refresh_token"] == "refresh-2"
    assert auth_service.requests == [auth_pb2.RefreshRequest(refresh_token="refresh-1")]


async def test_refresh_without_any_token_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/refresh")

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "refresh_token"]


async def test_refresh_from_the_cookie_needs_the_csrf_header(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/refresh", headers={"Cookie": "refresh_token=refresh-1"}
    )

    assert response.status_code == 403


async def test_refresh_from_the_cookie_rotates_the_cookie(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    response = await client.post(
        "/api/v1/auth/refresh",
        headers={"Cookie": "refresh_token=refresh-1", "X-Requested-With": "taskmesh"},
    )

    assert response.status_code == 200
    assert "refresh_token" not in response.json()
    assert response.headers["set-cookie"].startswith("refresh_token=refresh-2;")
    assert auth_service.requests == [auth_pb2.RefreshRequest(refresh_token="refresh-1")]


async def test_me_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["status"] == 401


@pytest.mark.usefixtures("signed_in")
async def test_me_answers_the_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/me")

    assert response.status_code == 200
    assert response.json()["email"] == "ada@example.com"


@pytest.mark.usefixtures("signed_in")
async def test_me_is_a_miss_then_a_hit_with_the_same_body(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    first = await client.get("/api/v1/auth/me")
    second = await client.get("/api/v1/auth/me")

    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.json() == first.json()
    assert second.headers["content-type"] == "application/json"
    assert len(auth_service.requests) == 1


@pytest.mark.usefixtures("signed_in")
async def test_me_cache_lookups_are_counted_as_hits_and_misses(client: httpx.AsyncClient) -> None:
    hits, misses = me_cache_requests("hit"), me_cache_requests("miss")

    for _ in range(3):
        await client.get("/api/v1/auth/me")

    assert (me_cache_requests("hit") - hits, me_cache_requests("miss") - misses) == (2, 1)


def me_cache_requests(result: str) -> float:
    labels = {"cache": "me", "result": result}
    return REGISTRY.get_sample_value("taskmesh_cache_requests_total", labels) or 0.0


@pytest.mark.usefixtures("signed_in")
async def test_logout_drops_the_me_cache(client: httpx.AsyncClient, me_cache: Any) -> None:
    await client.get("/api/v1/auth/me")

    response = await client.post("/api/v1/auth/logout")

    assert response.status_code == 204
    assert me_cache.entries == {}


@pytest.mark.usefixtures("signed_in")
async def test_change_password_drops_the_me_cache(client: httpx.AsyncClient, me_cache: Any) -> None:
    await client.get("/api/v1/auth/me")

    await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "correct horse", "new_password": "battery staple"},
    )

    assert me_cache.entries == {}


LOGIN = {"email": "Ada@Example.com", "password": "wrong password"}


async def fail_logins(client: httpx.AsyncClient, count: int) -> None:
    for _ in range(count):
        response = await client.post("/api/v1/auth/login", json=LOGIN)
        assert response.status_code == 401


async def test_failed_logins_lock_the_email_out_whatever_the_password(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")
    await fail_logins(client, 5)
    auth_service.error = None
    calls = len(auth_service.requests)

    response = await client.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": "correct horse"}
    )

    assert response.status_code == 429
    assert response.headers["retry-after"] == "900"
    assert response.headers["content-type"] == "application/problem+json"
    assert len(auth_service.requests) == calls


async def test_locked_out_email_is_refused_by_the_token_form_too(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")
    await fail_logins(client, 5)

    response = await client.post(
        "/api/v1/auth/token", data={"username": "ada@example.com", "password": "x"}
    )

    assert response.status_code == 429


async def test_four_failures_do_not_lock_the_email_out(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")
    await fail_logins(client, 4)
    auth_service.error = None

    response = await client.post("/api/v1/auth/login", json=LOGIN)

    assert response.status_code == 200


async def test_a_deactivated_account_is_not_counted_as_a_failed_login(
    client: httpx.AsyncClient, auth_service: FakeAuthService, login_guard: Any
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.PERMISSION_DENIED, "account deactivated")

    response = await client.post("/api/v1/auth/login", json=LOGIN)

    assert response.status_code == 403
    assert login_guard.failures() == 0


async def test_a_successful_login_is_not_counted_as_a_failure(
    client: httpx.AsyncClient, login_guard: Any
) -> None:
    for _ in range(6):
        response = await client.post("/api/v1/auth/login", json=LOGIN)
        assert response.status_code == 200

    assert login_guard.failures() == 0


async def test_a_locked_out_email_can_still_refresh(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")
    await fail_logins(client, 5)
    auth_service.error = None

    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": "refresh-1"})

    assert response.status_code == 200


@pytest.mark.usefixtures("signed_in")
async def test_logout_passes_the_access_token_id_and_clears_the_cookie(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    response = await client.post(
        "/api/v1/auth/logout",
        headers={"Cookie": "refresh_token=refresh-1", "X-Requested-With": "taskmesh"},
    )

    assert response.status_code == 204
    (request,) = auth_service.requests
    assert request.refresh_token == "refresh-1"
    assert request.access_token_id == "jti-1"
    assert request.access_token_expires_at.ToDatetime(tzinfo=UTC) == EXPIRES
    assert 'refresh_token=""' in response.headers["set-cookie"]


@pytest.mark.usefixtures("signed_in")
async def test_change_password_is_204(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    response = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "correct horse", "new_password": "battery staple"},
    )

    assert response.status_code == 204
    assert auth_service.requests == [
        auth_pb2.ChangePasswordRequest(
            current_password="correct horse", new_password="battery staple"
        )
    ]


@pytest.mark.usefixtures("signed_in")
async def test_change_password_to_a_short_one_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "correct horse", "new_password": "short"},
    )

    assert response.status_code == 422


async def test_forgot_password_is_202_with_no_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/forgot-password", json={"email": "nobody@example.com"}
    )

    assert response.status_code == 202
    assert response.content == b""


async def test_reset_password_is_204(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    response = await client.post(
        "/api/v1/auth/reset-password", json={"token": "t0k3n", "new_password": "battery staple"}
    )

    assert response.status_code == 204
    assert auth_service.requests == [
        auth_pb2.ResetPasswordRequest(token="t0k3n", new_password="battery staple")
    ]


async def test_reset_password_with_a_bad_token_is_400(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    auth_service.error = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "reset token expired")

    response = await client.post(
        "/api/v1/auth/reset-password", json={"token": "used", "new_password": "battery staple"}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "errors" not in response.json()


async def test_reset_password_refused_by_the_password_rules_stays_422(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    field_errors = json.dumps([{"loc": ["new_password"], "msg": "must not equal the email"}])
    auth_service.error = grpc.aio.AioRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(("x-field-errors", field_errors)),
        details="invalid password",
    )

    response = await client.post(
        "/api/v1/auth/reset-password", json={"token": "t0k3n", "new_password": "ada@example.com"}
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"loc": ["new_password"], "msg": "must not equal the email"}
    ]


async def test_refresh_cookie_is_secure_when_tls_is_trusted(
    auth_service: FakeAuthService, open_gate: Any, login_guard: Any
) -> None:
    app = create_app(GatewaySettings(trusted_tls=True))
    app.state.clients = ServiceClientsStandIn(auth_service)
    app.state.gatekeeper = open_gate
    app.state.login_guard = login_guard
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(
            "/api/v1/auth/login?refresh_cookie=true",
            json={"email": "ada@example.com", "password": "correct horse"},
        )

    assert "refresh_token" not in response.json()
    cookie = response.headers["set-cookie"]
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie


async def test_refresh_cookie_is_not_secure_over_plain_http(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login?refresh_cookie=true",
        json={"email": "ada@example.com", "password": "correct horse"},
    )

    assert "Secure" not in response.headers["set-cookie"]


@pytest.mark.usefixtures("signed_in")
async def test_logout_with_the_cookie_but_no_csrf_header_is_403(
    client: httpx.AsyncClient, auth_service: FakeAuthService
) -> None:
    response = await client.post(
        "/api/v1/auth/logout", headers={"Cookie": "refresh_token=refresh-1"}
    )

    assert response.status_code == 403
    assert auth_service.requests == []


async def test_jwks_lists_the_keys_without_unused_members(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.json() == {
        "keys": [
            {"kid": "k1", "kty": "OKP", "alg": "EdDSA", "use": "sig", "crv": "Ed25519", "x": "AAAA"}
        ]
    }
    assert response.headers["cache-control"] == "public, max-age=300"
