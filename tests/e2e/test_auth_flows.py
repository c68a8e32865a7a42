"""Every row of API.md's Auth table, through Traefik, against the whole suite.

The suite of this module starts with a bootstrap admin and rate limits high enough that a
module of anonymous requests from one IP is never throttled (the limits have tests of their
own). No email goes out until the notifications service exists, so the reset-password test
takes the token from the `user.password_reset_requested` event in auth's outbox, where the
notifications service will read it from.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import jwt
import pytest
from pymongo import MongoClient
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh_chassis.events import decode_event
from taskmesh_localrun.testing import LocalRun, eventually

from .conftest import StartSuite

pytestmark = pytest.mark.e2e

ADMIN_EMAIL = "e2e-admin@example.com"
ADMIN_PASSWORD = "e2e admin password, long enough"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "tr0ub4dor&3 but longer"
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class AuthSuite:
    """The running suite and what the tests need to reach behind it."""

    run: LocalRun
    database_prefix: str

    @property
    def url(self) -> str:
        return self.run.url

    @property
    def auth_grpc_target(self) -> str:
        return f"127.0.0.1:{self.run.process_info('auth')['ports']['grpc']}"

    def auth_database(self) -> Any:
        client: MongoClient[dict[str, Any]] = MongoClient(self.run.state["mongodb_url"])
        return client, client[f"{self.database_prefix}auth"]


@pytest.fixture(scope="module")
def auth_suite(start_suite: StartSuite) -> Iterator[AuthSuite]:
    prefix = f"e2e_auth_{secrets.token_hex(4)}_"
    run = start_suite(
        MONGODB_DATABASE_PREFIX=prefix,
        BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        RATE_LIMIT_ANON_PER_MIN="100000",
        RATE_LIMIT_USER_PER_MIN="100000",
    )
    run.wait_until_readyz()
    yield AuthSuite(run, prefix)
    run.close()


@pytest.fixture
def client(auth_suite: AuthSuite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=auth_suite.url, timeout=15) as http:
        yield http


def unique_email() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}@example.com"


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def register(client: httpx.Client, email: str | None = None) -> dict[str, Any]:
    response = client.post(
        "/api/v1/auth/register",
        json={"email": email or unique_email(), "password": PASSWORD, "name": "Ada Lovelace"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def login(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def me(client: httpx.Client, access_token: str) -> httpx.Response:
    return client.get("/api/v1/auth/me", headers=bearer(access_token))


def refresh(client: httpx.Client, refresh_token: str) -> httpx.Response:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM_JSON)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


def revoked_within_a_second(client: httpx.Client, access_token: str) -> bool:
    return eventually(lambda: me(client, access_token).status_code == 401, timeout_s=1.0)


# --- register ------------------------------------------------------------------------------


def test_register_answers_201_with_the_user_and_a_token_pair(client: httpx.Client) -> None:
    email = unique_email()

    body = register(client, email.upper())

    assert set(body) == {"user", "access_token", "refresh_token", "token_type", "expires_in"}
    user = body["user"]
    assert set(user) == {"id", "email", "role", "active", "created_at"}
    assert (user["email"], user["role"], user["active"]) == (email, "user", True)
    assert len(user["id"]) == 24
    assert user["created_at"].endswith("Z")
    assert (body["token_type"], body["expires_in"]) == ("bearer", 900)


def test_register_with_a_taken_email_in_another_case_is_409(client: httpx.Client) -> None:
    email = unique_email()
    register(client, email)

    response = client.post(
        "/api/v1/auth/register",
        json={"email": email.upper(), "password": PASSWORD, "name": "Someone Else"},
    )

    assert_problem(response, 409)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD, "name": "Ada"}, "email"),
        ({"email": "short@example.com", "password": "short", "name": "Ada"}, "password"),
        ({"email": "same@example.com", "password": "Same@Example.com", "name": "Ada"}, None),
        ({"email": "blank@example.com", "password": PASSWORD, "name": "   "}, "name"),
        ({"email": {"$gt": ""}, "password": PASSWORD, "name": "Ada"}, "email"),
    ],
    ids=["email", "password", "password-is-email", "name", "operator-payload"],
)
def test_register_with_invalid_input_is_422(
    client: httpx.Client, body: dict[str, Any], field: str | None
) -> None:
    problem = assert_problem(client.post("/api/v1/auth/register", json=body), 422)

    if field is not None:
        assert ["body", field] in [error["loc"][:2] for error in problem["errors"]]


# --- login, token --------------------------------------------------------------------------


def test_login_answers_200_with_a_token_pair(client: httpx.Client) -> None:
    email = unique_email()
    register(client, email)

    response = login(client, email.upper())

    assert response.status_code == 200, response.text
    assert set(response.json()) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert me(client, response.json()["access_token"]).json()["email"] == email


def test_wrong_password_and_unknown_email_are_the_same_401(client: httpx.Client) -> None:
    email = unique_email()
    register(client, email)

    wrong_password = login(client, email, "not the password")
    unknown_email = login(client, unique_email())

    for response in (wrong_password, unknown_email):
        assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert wrong_password.json()["detail"] == unknown_email.json()["detail"]


def test_oauth2_password_form_logs_in(client: httpx.Client) -> None:
    email = unique_email()
    register(client, email)

    response = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})

    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "bearer"
    wrong = client.post("/api/v1/auth/token", data={"username": email, "password": "nope"})
    assert_problem(wrong, 401)


def test_access_token_verifies_against_the_published_jwks(client: httpx.Client) -> None:
    body = register(client)
    jwks = client.get("/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(body["access_token"])
    [jwk] = [key for key in jwks["keys"] if key["kid"] == header["kid"]]

    claims = jwt.decode(
        body["access_token"],
        jwt.PyJWK(jwk).key,
        algorithms=["EdDSA"],
        audience="taskmesh-api",
        issuer="taskmesh",
    )

    assert header["typ"] == "at+jwt"
    assert claims["sub"] == body["user"]["id"]
    assert claims["role"] == "user"
    assert claims["exp"] - claims["iat"] == pytest.approx(900, abs=1)
    assert {"jti", "sid"} <= set(claims)


# --- refresh -------------------------------------------------------------------------------


def test_refresh_rotates_and_the_old_refresh_token_stops_working(client: httpx.Client) -> None:
    first = register(client)

    response = refresh(client, first["refresh_token"])

    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert me(client, second["access_token"]).status_code == 200
    assert_problem(refresh(client, first["refresh_token"]), 401)


def test_refresh_token_reuse_revokes_every_token_of_the_session(client: httpx.Client) -> None:
    first = register(client)
    second = refresh(client, first["refresh_token"]).json()

    assert_problem(refresh(client, first["refresh_token"]), 401)

    assert_problem(refresh(client, second["refresh_token"]), 401)
    assert revoked_within_a_second(client, second["access_token"])


def test_browser_refresh_token_travels_in_an_http_only_cookie(client: httpx.Client) -> None:
    email = unique_email()
    register(client, email)

    response = client.post(
        "/api/v1/auth/login?refresh_cookie=true", json={"email": email, "password": PASSWORD}
    )

    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json()
    assert "httponly" in response.headers["Set-Cookie"].lower()
    rotated = client.post("/api/v1/auth/refresh", headers={"X-Requested-With": "taskmesh"})
    assert rotated.status_code == 200, rotated.text


# --- logout, me ----------------------------------------------------------------------------


def test_logout_answers_204_and_its_tokens_stop_working_at_once(client: httpx.Client) -> None:
    tokens = register(client)

    response = client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )

    assert response.status_code == 204, response.text
    assert revoked_within_a_second(client, tokens["access_token"])
    assert_problem(refresh(client, tokens["refresh_token"]), 401)


def test_logout_without_a_body_ends_the_access_tokens_session(client: httpx.Client) -> None:
    tokens = register(client)

    response = client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))

    assert response.status_code == 204, response.text
    assert_problem(refresh(client, tokens["refresh_token"]), 401)


def test_logout_without_a_token_is_401(client: httpx.Client) -> None:
    assert_problem(client.post("/api/v1/auth/logout"), 401)


def test_me_answers_the_user_then_from_the_cache(client: httpx.Client) -> None:
    body = register(client)

    first = me(client, body["access_token"])
    second = me(client, body["access_token"])

    assert first.status_code == 200
    assert first.json() == body["user"]
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert second.json() == body["user"]


# --- passwords -----------------------------------------------------------------------------


def test_change_password_revokes_other_sessions_and_keeps_this_one(client: httpx.Client) -> None:
    email = unique_email()
    mine = register(client, email)
    other = login(client, email).json()

    response = client.post(
        "/api/v1/auth/change-password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(mine["access_token"]),
    )

    assert response.status_code == 204, response.text
    assert revoked_within_a_second(client, other["access_token"])
    assert_problem(refresh(client, other["refresh_token"]), 401)
    assert me(client, mine["access_token"]).status_code == 200
    assert refresh(client, mine["refresh_token"]).status_code == 200
    assert login(client, email, NEW_PASSWORD).status_code == 200
    assert_problem(login(client, email, PASSWORD), 401)


def test_change_password_with_a_wrong_current_password_is_401(client: httpx.Client) -> None:
    tokens = register(client)

    response = client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=bearer(tokens["access_token"]),
    )

    assert_problem(response, 401)
    assert me(client, tokens["access_token"]).status_code == 200


@pytest.mark.parametrize("known", [True, False], ids=["known", "unknown"])
def test_forgot_password_is_202_whether_or_not_the_account_exists(
    client: httpx.Client, known: bool
) -> None:
    email = unique_email()
    if known:
        register(client, email)

    response = client.post("/api/v1/auth/forgot-password", json={"email": email})

    assert response.status_code == 202, response.text
    assert response.content == b""


def test_reset_password_sets_the_password_and_revokes_every_session(
    client: httpx.Client, auth_suite: AuthSuite
) -> None:
    email = unique_email()
    first = register(client, email)
    second = login(client, email).json()
    assert client.post("/api/v1/auth/forgot-password", json={"email": email}).status_code == 202
    token = reset_token_from_outbox(auth_suite, first["user"]["id"])

    response = client.post(
        "/api/v1/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )

    assert response.status_code == 204, response.text
    for tokens in (first, second):
        assert revoked_within_a_second(client, tokens["access_token"])
        assert_problem(refresh(client, tokens["refresh_token"]), 401)
    assert login(client, email, NEW_PASSWORD).status_code == 200
    used_again = client.post(
        "/api/v1/auth/reset-password", json={"token": token, "new_password": PASSWORD}
    )
    assert_problem(used_again, 400)


def test_reset_password_with_a_bad_token_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/auth/reset-password",
        json={"token": secrets.token_urlsafe(32), "new_password": NEW_PASSWORD},
    )

    assert_problem(response, 400)


# --- deactivation and the bootstrap admin -----------------------------------------------


def test_bootstrap_admin_logs_in_as_admin(client: httpx.Client) -> None:
    response = login(client, ADMIN_EMAIL, ADMIN_PASSWORD)

    assert response.status_code == 200, response.text
    assert me(client, response.json()["access_token"]).json()["role"] == "admin"


def test_deactivated_user_is_403_at_login_and_loses_access_within_a_second(
    client: httpx.Client, auth_suite: AuthSuite
) -> None:
    email = unique_email()
    body = register(client, email)
    admin = login(client, ADMIN_EMAIL, ADMIN_PASSWORD).json()

    # No HTTP route deactivates yet (PATCH /users/{id} belongs to the users service), so the
    # admin's token goes straight to auth's UpdateUser.
    with grpc.insecure_channel(auth_suite.auth_grpc_target) as channel:
        auth_pb2_grpc.AuthServiceStub(channel).UpdateUser(
            auth_pb2.UpdateUserRequest(user_id=body["user"]["id"], active=False),
            metadata=[("authorization", f"Bearer {admin['access_token']}")],
            timeout=10,
        )

    assert revoked_within_a_second(client, body["access_token"])
    assert_problem(login(client, email), 403)
    assert_problem(refresh(client, body["refresh_token"]), 401)


def reset_token_from_outbox(auth_suite: AuthSuite, user_id: str) -> str:
    """The token of the user's reset email, from the event the notifications service reads."""
    mongo, database = auth_suite.auth_database()
    try:
        deadline = time.monotonic() + 10
        while True:
            record = database.outbox.find_one(
                {"type": "user.password_reset_requested", "subject": user_id}
            )
            if record is not None:
                token: str = decode_event(bytes(record["body"])).payload.reset_token
                return token
            assert time.monotonic() < deadline, "no reset token was issued"
            time.sleep(0.1)
    finally:
        mongo.close()
