"""The gateway's security layer through Traefik: token rejection, revocation, limits, guards.

These tests start a suite of their own, with the contract's default limits (100/min per user,
20/min per client IP, 5 failed logins per 15 min) and a signing key they generated, so they
can mint tokens that differ from the auth service's in exactly one respect. Every test sends
from a fresh loopback address (127.x.y.z; Traefik passes it on in X-Forwarded-For) and uses
fresh accounts, so no test spends another's quota.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from taskmesh_localrun.testing import LocalRun, json_lines

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
ADMIN_EMAIL = "root-e2e@example.com"
ADMIN_PASSWORD = "admin correct horse battery"
REVOCATION_DEADLINE_S = 1.0
RATE_LIMIT = re.compile(r'^"(user|ip)";r=(\d+);t=(\d+)$')


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def security_suite(
    start_suite: Callable[..., LocalRun], signing_key: Ed25519PrivateKey
) -> Iterator[LocalRun]:
    pem = signing_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    run = start_suite(
        RATE_LIMIT_USER_PER_MIN="100",
        RATE_LIMIT_ANON_PER_MIN="20",
        LOGIN_MAX_FAILURES="5",
        LOGIN_FAILURE_WINDOW_S="900",
        JWT_SIGNING_KEY=pem,
        BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    run.wait_until_readyz()
    yield run
    run.close()


def fresh_address() -> str:
    """A loopback address of its own (never 127.0.0.1, Traefik's), so its own IP quota."""
    octets = [secrets.randbelow(254) + 1, secrets.randbelow(254) + 1, secrets.randbelow(253) + 2]
    return "127." + ".".join(map(str, octets))


NewClient = Callable[[], httpx.Client]


@pytest.fixture
def new_client(security_suite: LocalRun) -> Iterator[NewClient]:
    clients: list[httpx.Client] = []

    def new() -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=fresh_address())
        client = httpx.Client(base_url=security_suite.url, transport=transport, timeout=15)
        clients.append(client)
        return client

    yield new
    for client in clients:
        client.close()


@pytest.fixture
def http(new_client: NewClient) -> httpx.Client:
    return new_client()


def register(http: httpx.Client, email: str | None = None) -> dict[str, Any]:
    email = email or f"e2e-{uuid.uuid4().hex[:12]}@example.com"
    response = http.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
    )
    assert response.status_code == 201, response.text
    account: dict[str, Any] = response.json()
    account["email"] = email
    return account


def log_in(http: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return http.post("/api/v1/auth/login", json={"email": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def me(http: httpx.Client, token: str) -> httpx.Response:
    return http.get("/api/v1/auth/me", headers=bearer(token))


def becomes_401_within(check: Callable[[], httpx.Response], deadline_s: float) -> float:
    """How long until `check` answers 401 (several times in a row, so on both gateways)."""
    started = time.monotonic()
    while True:
        if all(check().status_code == 401 for _ in range(4)):
            return time.monotonic() - started
        if time.monotonic() - started > deadline_s:
            return float("inf")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def published_kid(security_suite: LocalRun) -> str:
    transport = httpx.HTTPTransport(local_address=fresh_address())
    with httpx.Client(base_url=security_suite.url, transport=transport, timeout=10) as http:
        jwks = http.get("/.well-known/jwks.json").json()
    kid: str = jwks["keys"][0]["kid"]
    return kid


def forged_claims(user_id: str, **changes: Any) -> dict[str, Any]:
    now = time.time()
    claims = {
        "iss": "taskmesh",
        "aud": "taskmesh-api",
        "sub": user_id,
        "role": "user",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "sid": uuid.uuid4().hex,
    }
    return {name: value for name, value in (claims | changes).items() if value is not None}


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def hs256_with_the_public_key(key: Ed25519PrivateKey, kid: str, user_id: str) -> str:
    signing_input = unsigned({"alg": "HS256", "typ": "at+jwt", "kid": kid}, forged_claims(user_id))
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


Forge = Callable[[Ed25519PrivateKey, str, dict[str, Any]], str]


def signed(header_changes: dict[str, Any] | None = None, **claim_changes: Any) -> Forge:
    def forge(key: Ed25519PrivateKey, kid: str, account: dict[str, Any]) -> str:
        headers = {"kid": kid, "typ": "at+jwt", **(header_changes or {})}
        headers = {name: value for name, value in headers.items() if value is not None}
        claims = forged_claims(account["user"]["id"], **claim_changes)
        return jwt.encode(claims, key, algorithm="EdDSA", headers=headers)

    return forge


REJECTED_TOKENS: dict[str, Forge] = {
    "malformed": lambda key, kid, account: "not-a-jwt",
    "alg none": lambda key, kid, account: (
        unsigned({"alg": "none", "typ": "at+jwt", "kid": kid}, forged_claims(account["user"]["id"]))
        + "."
    ),
    "tampered payload": lambda key, kid, account: tampered(account["access_token"]),
    "hs256 signed with the public key": lambda key, kid, account: hs256_with_the_public_key(
        key, kid, account["user"]["id"]
    ),
    "a key not in the jwks": lambda key, kid, account: jwt.encode(
        forged_claims(account["user"]["id"]),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "not-published", "typ": "at+jwt"},
    ),
    "expired": signed(iat=time.time() - 3600, exp=time.time() - 60),
    "wrong audience": signed(aud="another-api"),
    "wrong issuer": signed(iss="https://issuer.evil.example"),
    "missing typ": signed({"typ": None}),
    "refresh token as access token": lambda key, kid, account: account["refresh_token"],
}


def test_a_correctly_forged_token_is_accepted_so_each_rejection_tests_one_flaw(
    http: httpx.Client, signing_key: Ed25519PrivateKey, published_kid: str
) -> None:
    account = register(http)

    response = me(http, signed()(signing_key, published_kid, account))

    assert response.status_code == 200


@pytest.mark.parametrize("case", sorted(REJECTED_TOKENS))
def test_rejected_token_is_401(
    http: httpx.Client, signing_key: Ed25519PrivateKey, published_kid: str, case: str
) -> None:
    account = register(http)
    token = REJECTED_TOKENS[case](signing_key, published_kid, account)

    response = me(http, token)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.headers["content-type"] == "application/problem+json"


def test_no_token_is_401_with_a_bearer_challenge(http: httpx.Client) -> None:
    response = http.get("/api/v1/auth/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_logout_revokes_the_access_token_within_a_second(http: httpx.Client) -> None:
    account = register(http)
    assert me(http, account["access_token"]).status_code == 200

    assert (
        http.post("/api/v1/auth/logout", headers=bearer(account["access_token"])).status_code == 204
    )

    assert becomes_401_within(lambda: me(http, account["access_token"]), REVOCATION_DEADLINE_S) <= (
        REVOCATION_DEADLINE_S
    )


def test_password_change_revokes_the_other_sessions_within_a_second(http: httpx.Client) -> None:
    account = register(http)
    other_session = log_in(http, account["email"]).json()["access_token"]
    assert me(http, other_session).status_code == 200

    changed = http.post(
        "/api/v1/auth/change-password",
        headers=bearer(account["access_token"]),
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    )

    assert changed.status_code == 204
    assert becomes_401_within(lambda: me(http, other_session), REVOCATION_DEADLINE_S) <= (
        REVOCATION_DEADLINE_S
    )


def grpc_target(suite: LocalRun, service: str) -> str:
    return f"127.0.0.1:{suite.process_info(service)['ports']['grpc']}"


def test_deactivation_revokes_the_users_tokens_within_a_second(
    security_suite: LocalRun, http: httpx.Client
) -> None:
    account = register(http)
    admin = log_in(http, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert admin.status_code == 200, admin.text
    assert me(http, account["access_token"]).status_code == 200

    async def deactivate() -> None:
        async with grpc.aio.insecure_channel(grpc_target(security_suite, "auth")) as channel:
            await auth_pb2_grpc.AuthServiceStub(channel).UpdateUser(
                auth_pb2.UpdateUserRequest(user_id=account["user"]["id"], active=False),
                metadata=(("authorization", f"Bearer {admin.json()['access_token']}"),),
                timeout=10,
            )

    asyncio.run(deactivate())

    assert becomes_401_within(lambda: me(http, account["access_token"]), REVOCATION_DEADLINE_S) <= (
        REVOCATION_DEADLINE_S
    )


async def call_service_directly(
    suite: LocalRun, service: str, metadata: tuple[tuple[str, str], ...]
) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(grpc_target(suite, service)) as channel:
        try:
            if service == "auth":
                await auth_pb2_grpc.AuthServiceStub(channel).GetMe(
                    auth_pb2.GetMeRequest(), metadata=metadata, timeout=10
                )
            else:
                await tasks_pb2_grpc.TasksServiceStub(channel).GetTask(
                    tasks_pb2.GetTaskRequest(task_id="65f0c0ffee0000000000aaaa"),
                    metadata=metadata,
                    timeout=10,
                )
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("service", ["auth", "tasks"])
def test_calling_a_service_port_with_a_forged_identity_is_unauthenticated(
    security_suite: LocalRun,
    http: httpx.Client,
    signing_key: Ed25519PrivateKey,
    published_kid: str,
    service: str,
) -> None:
    account = register(http)
    forged = hs256_with_the_public_key(signing_key, published_kid, account["user"]["id"])
    attempts = [
        (("authorization", f"Bearer {forged}"),),
        (("authorization", f"Bearer {tampered(account['access_token'])}"),),
        (
            ("authorization", f"Bearer {account['access_token']}"),
            ("x-user-id", "65f0c0ffee0000000000ffff"),
        ),
    ]

    codes = [asyncio.run(call_service_directly(security_suite, service, md)) for md in attempts]

    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 3


def test_calling_auth_directly_with_only_a_user_id_is_unauthenticated(
    security_suite: LocalRun, http: httpx.Client
) -> None:
    account = register(http)
    metadata = (("x-user-id", account["user"]["id"]), ("x-user-role", "admin"))

    code = asyncio.run(call_service_directly(security_suite, "auth", metadata))

    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_failed_logins_lock_the_email_out_but_not_its_sessions(
    new_client: NewClient,
) -> None:
    http = new_client()
    account = register(http)
    failures = [log_in(new_client(), account["email"], "wrong password") for _ in range(5)]

    locked = log_in(new_client(), account["email"].upper())
    refreshed = http.post("/api/v1/auth/refresh", json={"refresh_token": account["refresh_token"]})
    still_signed_in = me(http, account["access_token"])

    assert [failure.status_code for failure in failures] == [401] * 5
    assert locked.status_code == 429
    assert 800 < int(locked.headers["retry-after"]) <= 900
    assert locked.headers["content-type"] == "application/problem+json"
    assert refreshed.status_code == 200
    assert still_signed_in.status_code == 200


def test_a_burst_of_parallel_guesses_gets_only_five_to_the_auth_service(
    security_suite: LocalRun, new_client: NewClient
) -> None:
    account = register(new_client())

    async def guess() -> httpx.Response:
        transport = httpx.AsyncHTTPTransport(local_address=fresh_address())
        async with httpx.AsyncClient(
            base_url=security_suite.url, transport=transport, timeout=30
        ) as client:
            return await client.post(
                "/api/v1/auth/login", json={"email": account["email"], "password": "guess"}
            )

    async def burst() -> list[httpx.Response]:
        return await asyncio.gather(*(guess() for _ in range(20)))

    statuses = [answer.status_code for answer in asyncio.run(burst())]

    assert statuses.count(401) == 5
    assert statuses.count(429) == 15


def test_other_emails_are_not_locked_out(new_client: NewClient) -> None:
    http = new_client()
    locked, other = register(http), register(http)
    for _ in range(5):
        log_in(new_client(), locked["email"], "wrong password")

    assert log_in(new_client(), other["email"]).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/login", {"email": {"$gt": ""}, "password": PASSWORD}),
        ("/api/v1/auth/login", {"email": "ada@example.com", "password": {"$ne": None}}),
        ("/api/v1/auth/register", {"email": {"$gt": ""}, "password": PASSWORD, "name": "Ada"}),
        ("/api/v1/auth/forgot-password", {"email": {"$regex": ".*"}}),
        ("/api/v1/auth/refresh", {"refresh_token": {"$gt": ""}}),
    ],
)
def test_nosql_operator_payloads_are_422_and_never_reach_the_service(
    security_suite: LocalRun, http: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    request_id = f"e2e-nosql-{uuid.uuid4().hex}"

    response = http.post(path, json=body, headers={"X-Request-ID": request_id})

    assert response.status_code == 422
    time.sleep(0.3)
    auth_lines = json_lines(security_suite.log("auth"))
    assert not [line for line in auth_lines if line.get("request_id") == request_id]


def test_every_answer_on_an_api_route_carries_the_rate_limit_headers(http: httpx.Client) -> None:
    account = register(http)

    signed_in = me(http, account["access_token"])
    anonymous = http.get("/api/v1/auth/me")

    assert signed_in.headers["ratelimit-policy"] == '"user";q=100;w=60'
    assert RATE_LIMIT.match(signed_in.headers["ratelimit"])
    assert anonymous.headers["ratelimit-policy"] == '"ip";q=20;w=60'
    assert RATE_LIMIT.match(anonymous.headers["ratelimit"])


def test_user_limit_holds_exactly_across_both_gateways(
    security_suite: LocalRun, http: httpx.Client
) -> None:
    account = register(http)
    token = account["access_token"]
    request_ids = [f"e2e-rl-{uuid.uuid4().hex}" for _ in range(130)]

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(
            base_url=security_suite.url, timeout=30, limits=limits
        ) as client:
            return await asyncio.gather(
                *(
                    client.get(
                        "/api/v1/auth/me", headers={**bearer(token), "X-Request-ID": request_id}
                    )
                    for request_id in request_ids
                )
            )

    answers = asyncio.run(burst())

    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == 100
    assert statuses.count(429) == 30
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert RATE_LIMIT.match(refused.headers["ratelimit"]).group(2) == "0"  # type: ignore[union-attr]
    served_by = [
        {line.get("request_id") for line in json_lines(security_suite.log(gateway))}
        for gateway in ("gateway-1", "gateway-2")
    ]
    assert all(set(request_ids) & ids for ids in served_by)


def test_anonymous_limit_is_per_client_address_and_ignores_spoofed_forwarding(
    new_client: NewClient,
) -> None:
    limited, other = new_client(), new_client()

    answers = [limited.get("/.well-known/jwks.json") for _ in range(22)]
    spoofed = limited.get("/.well-known/jwks.json", headers={"X-Forwarded-For": "10.9.8.7"})
    elsewhere = other.get("/.well-known/jwks.json")

    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * 20 + [429] * 2
    assert spoofed.status_code == 429
    assert elsewhere.status_code == 200


def test_health_and_docs_are_never_limited(new_client: NewClient) -> None:
    http = new_client()

    statuses = {http.get(path).status_code for path in ["/healthz"] * 25 + ["/docs"]}

    assert statuses == {200}


def test_me_is_cached_per_token_and_dropped_on_logout(http: httpx.Client) -> None:
    account = register(http)
    token = account["access_token"]

    first, second = me(http, token), me(http, token)
    http.post("/api/v1/auth/logout", headers=bearer(token))
    after_logout = me(http, token)

    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.json() == first.json()
    assert after_logout.status_code == 401


def test_refresh_cookie_mode_keeps_the_token_out_of_the_body_and_wants_the_csrf_header(
    http: httpx.Client,
) -> None:
    account = register(http)

    logged_in = http.post(
        "/api/v1/auth/login?refresh_cookie=true",
        json={"email": account["email"], "password": PASSWORD},
    )
    without_header = http.post("/api/v1/auth/refresh")
    with_header = http.post("/api/v1/auth/refresh", headers={"X-Requested-With": "taskmesh"})

    assert logged_in.status_code == 200
    assert "refresh_token" not in logged_in.json()
    cookie = logged_in.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/api/v1/auth" in cookie
    assert without_header.status_code == 403
    assert with_header.status_code == 200
    assert "refresh_token" not in with_header.json()
    assert with_header.headers["set-cookie"].startswith("refresh_token=")
