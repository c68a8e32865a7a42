"""Admission through the real app: token verification, revocation, rate limits, Redis down.

Real Ed25519 keys, a real Redis (database 14, fresh keys per test), the gateway built by
`create_app` with its Gatekeeper over a fixed key set. Each test sends from its own client
address (X-Forwarded-For from the trusted in-process peer), so their rate limits never meet.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, FastAPI
from google.protobuf.empty_pb2 import Empty
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh.common.v1 import common_pb2
from taskmesh_chassis.identity import (
    Caller,
    GrpcJwksProvider,
    StaticJwksProvider,
    TokenVerifier,
    not_before_key,
    revoked_session_key,
    revoked_token_key,
)
from taskmesh_chassis.testing import capture_logs, find_free_port
from taskmesh_gateway.admission import REVOCATION_BATCH, Gatekeeper
from taskmesh_gateway.app import create_app
from taskmesh_gateway.clients import ServiceClients, create_redis
from taskmesh_gateway.dependencies import AdminUser, CurrentUser
from taskmesh_gateway.me_cache import MeCache
from taskmesh_gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/14"
ISSUER, AUDIENCE = "taskmesh", "taskmesh-api"

probe_router = APIRouter(prefix="/api/v1/_probe")


@probe_router.get("/whoami")
async def whoami(caller: CurrentUser) -> dict[str, str]:
    """Answer the verified caller."""
    return {"user_id": caller.user_id, "role": caller.role}


@probe_router.get("/admin")
async def admin_only(caller: AdminUser) -> dict[str, str]:
    """Answer admins only."""
    return {"user_id": caller.user_id}


@probe_router.get("/public")
async def public() -> dict[str, bool]:
    """Answer anyone."""
    return {"ok": True}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def user_id() -> str:
    return uuid.uuid4().hex[:24]


def claims(user_id: str, **changes: Any) -> dict[str, Any]:
    now = time.time()
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id,
        "role": "user",
        "iat": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "sid": uuid.uuid4().hex,
    }
    return {name: value for name, value in (base | changes).items() if value is not None}


def mint(key: Ed25519PrivateKey, user_id: str, kid: str = "k1", **changes: Any) -> str:
    headers = {"kid": kid, "typ": "at+jwt"}
    return jwt.encode(claims(user_id, **changes), key, algorithm="EdDSA", headers=headers)


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"


def hs256_with_public_key(key: Ed25519PrivateKey, user_id: str) -> str:
    signing_input = unsigned({"alg": "HS256", "typ": "at+jwt", "kid": "k1"}, claims(user_id))
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tampered(key: Ed25519PrivateKey, user_id: str) -> str:
    header, _, signature = mint(key, user_id).split(".")
    payload = b64url(json.dumps(claims(user_id, role="admin")).encode())
    return f"{header}.{payload}.{signature}"


REJECTED: dict[str, Callable[[Ed25519PrivateKey, str], str]] = {
    "malformed": lambda key, user: "not.a-jwt",
    "alg none": lambda key, user: (
        unsigned({"alg": "none", "typ": "at+jwt", "kid": "k1"}, claims(user)) + "."
    ),
    "tampered payload": tampered,
    "hs256 signed with the public key": hs256_with_public_key,
    "kid not in jwks": lambda key, user: mint(key, user, kid="k9"),
    "expired": lambda key, user: mint(key, user, iat=time.time() - 999, exp=time.time() - 60),
    "wrong audience": lambda key, user: mint(key, user, aud="another-api"),
    "wrong issuer": lambda key, user: mint(key, user, iss="https://evil.example"),
    "refresh token": lambda key, user: secrets.token_urlsafe(32),
    "missing typ": lambda key, user: jwt.encode(
        claims(user), key, algorithm="EdDSA", headers={"kid": "k1"}
    ),
    "missing sid": lambda key, user: mint(key, user, sid=None),
}


def fresh_ip() -> str:
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}:{secrets.token_hex(2)}"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = create_redis(GatewaySettings(redis_url=REDIS_URL))
    yield client
    await client.aclose()


AppFactory = Callable[..., FastAPI]


@pytest.fixture
def build_app(redis: Redis, signing_key: Ed25519PrivateKey) -> AppFactory:
    def build(
        *, user_limit: int = 100, anon_limit: int = 20, redis_client: Redis | None = None
    ) -> FastAPI:
        settings = GatewaySettings(
            environment="test",
            rate_limit_user_per_min=user_limit,
            rate_limit_anon_per_min=anon_limit,
        )
        app = create_app(settings)
        app.include_router(probe_router)
        verifier = TokenVerifier(
            StaticJwksProvider({"k1": signing_key.public_key()}), issuer=ISSUER, audience=AUDIENCE
        )
        app.state.gatekeeper = Gatekeeper(
            verifier,
            redis_client or redis,
            user_limit_per_min=user_limit,
            anonymous_limit_per_min=anon_limit,
        )
        return app

    return build


def client_for(
    app: FastAPI, *, ip: str | None = None, peer: str = "127.0.0.1"
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    headers = {"X-Forwarded-For": ip or fresh_ip()}
    return httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers)


@pytest.fixture
async def client(build_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(build_app()) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_valid_token_reaches_the_route_as_its_caller(
    client: httpx.AsyncClient, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    response = await client.get("/api/v1/_probe/whoami", headers=bearer(mint(signing_key, user_id)))

    assert response.status_code == 200
    assert response.json() == {"user_id": user_id, "role": "user"}


async def test_the_access_log_names_the_caller_but_never_the_token(
    client: httpx.AsyncClient, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    logs = capture_logs("gateway")
    token = mint(signing_key, user_id)

    await client.get("/api/v1/_probe/whoami", headers=bearer(token))
    await client.get("/api/v1/_probe/whoami", headers=bearer(tampered(signing_key, user_id)))

    accepted, refused = logs.events("http.request")
    assert accepted["user_id"] == user_id
    assert "user_id" not in refused
    assert token.split(".")[2] not in json.dumps(logs.lines())


async def test_no_token_is_401_with_a_bare_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/_probe/whoami")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


async def test_other_authorization_schemes_count_as_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/_probe/whoami", headers={"Authorization": "Basic YWRhOnNlY3JldA=="}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("case", sorted(REJECTED))
async def test_rejected_token_is_401_invalid_token(
    client: httpx.AsyncClient, signing_key: Ed25519PrivateKey, user_id: str, case: str
) -> None:
    token = REJECTED[case](signing_key, user_id)

    response = await client.get("/api/v1/_probe/whoami", headers=bearer(token))

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json()["status"] == 401
    assert token not in response.text


async def test_expired_token_says_so(
    client: httpx.AsyncClient, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    token = mint(signing_key, user_id, iat=time.time() - 999, exp=time.time() - 60)

    response = await client.get("/api/v1/_probe/whoami", headers=bearer(token))

    assert "expired" in response.headers["www-authenticate"]
    assert response.json()["detail"] == "The access token has expired."


async def test_rejected_token_on_a_public_route_is_ignored(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/_probe/public", headers=bearer("garbage"))

    assert response.status_code == 200


async def test_user_is_not_admin(
    client: httpx.AsyncClient, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    response = await client.get("/api/v1/_probe/admin", headers=bearer(mint(signing_key, user_id)))

    assert response.status_code == 403


async def test_admin_is_admin(
    client: httpx.AsyncClient, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    token = mint(signing_key, user_id, role="admin")

    response = await client.get("/api/v1/_probe/admin", headers=bearer(token))

    assert response.status_code == 200


@pytest.mark.parametrize("revocation", ["jti", "sid"])
async def test_revoked_token_is_401(
    client: httpx.AsyncClient,
    redis: Redis,
    signing_key: Ed25519PrivateKey,
    user_id: str,
    revocation: str,
) -> None:
    token_id, session_id = uuid.uuid4().hex, uuid.uuid4().hex
    token = mint(signing_key, user_id, jti=token_id, sid=session_id)
    assert (await client.get("/api/v1/_probe/whoami", headers=bearer(token))).status_code == 200
    key = revoked_token_key(token_id) if revocation == "jti" else revoked_session_key(session_id)
    await redis.set(key, "1", ex=60)

    response = await client.get("/api/v1/_probe/whoami", headers=bearer(token))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        'Bearer error="invalid_token", error_description="the access token has been revoked"'
    )


async def test_tokens_issued_before_the_users_not_before_are_revoked(
    client: httpx.AsyncClient, redis: Redis, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    now = time.time()
    old = mint(signing_key, user_id, iat=now - 10)
    new = mint(signing_key, user_id, iat=now + 0.001)
    await redis.set(not_before_key(user_id), repr(now), ex=60)

    old_answer = await client.get("/api/v1/_probe/whoami", headers=bearer(old))
    new_answer = await client.get("/api/v1/_probe/whoami", headers=bearer(new))

    assert old_answer.status_code == 401
    assert new_answer.status_code == 200


async def test_unreadable_not_before_revokes_rather_than_accepts(
    client: httpx.AsyncClient, redis: Redis, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    await redis.set(not_before_key(user_id), "not-a-number", ex=60)

    response = await client.get("/api/v1/_probe/whoami", headers=bearer(mint(signing_key, user_id)))

    assert response.status_code == 401


@pytest.mark.parametrize("with_token", [True, False])
async def test_redis_down_is_503_never_accept(
    build_app: AppFactory, signing_key: Ed25519PrivateKey, user_id: str, with_token: bool
) -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{find_free_port()}/0", socket_connect_timeout=0.5)
    headers = bearer(mint(signing_key, user_id)) if with_token else {}
    async with client_for(build_app(redis_client=dead)) as client:
        response = await client.get("/api/v1/_probe/whoami", headers=headers)
    await dead.aclose()

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/problem+json"


async def test_auth_down_with_no_keys_is_503(
    build_app: AppFactory, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    app = build_app()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{find_free_port()}")
    provider = GrpcJwksProvider(auth_pb2_grpc.AuthServiceStub(channel), timeout_s=0.5)
    app.state.gatekeeper._verifier = TokenVerifier(provider, issuer=ISSUER, audience=AUDIENCE)
    async with client_for(app) as client:
        response = await client.get(
            "/api/v1/_probe/whoami", headers=bearer(mint(signing_key, user_id))
        )
    await channel.close()

    assert response.status_code == 503


async def test_answers_carry_the_caller_rate_limit_headers(
    client: httpx.AsyncClient, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    response = await client.get("/api/v1/_probe/whoami", headers=bearer(mint(signing_key, user_id)))

    assert response.headers["ratelimit-policy"] == '"user";q=100;w=60'
    assert response.headers["ratelimit"] == '"user";r=99;t=60'


async def test_errors_carry_the_rate_limit_headers_too(client: httpx.AsyncClient) -> None:
    unauthorized = await client.get("/api/v1/_probe/whoami")
    not_found = await client.get("/api/v1/no-such-thing")
    malformed = await client.post(
        "/api/v1/auth/login", content=b"{", headers={"Content-Type": "application/json"}
    )

    assert [r.status_code for r in (unauthorized, not_found, malformed)] == [401, 404, 400]
    assert [r.headers["ratelimit"] for r in (unauthorized, not_found, malformed)] == [
        '"ip";r=19;t=60',
        '"ip";r=18;t=60',
        '"ip";r=17;t=60',
    ]


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/docs", "/api/v1/openapi.json"])
async def test_operational_and_docs_routes_are_not_limited(
    build_app: AppFactory, path: str
) -> None:
    async with client_for(build_app(anon_limit=1)) as client:
        answers = [await client.get(path) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert all("ratelimit" not in answer.headers for answer in answers)


async def test_anonymous_requests_beyond_the_limit_are_429_with_retry_after(
    build_app: AppFactory,
) -> None:
    async with client_for(build_app(anon_limit=3)) as client:
        answers = [await client.get("/api/v1/_probe/public") for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429
    assert 58 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-policy"] == '"ip";q=3;w=60'
    assert refused.headers["ratelimit"].startswith('"ip";r=0;t=')
    assert "x-request-id" in refused.headers


async def test_refusals_are_counted_by_policy(
    build_app: AppFactory, signing_key: Ed25519PrivateKey
) -> None:
    before = {policy: rate_limited(policy) for policy in ("ip", "user")}
    token = mint(signing_key, uuid.uuid4().hex)
    async with client_for(build_app(anon_limit=1, user_limit=2)) as client:
        for _ in range(3):
            await client.get("/api/v1/_probe/public")
        for _ in range(3):
            await client.get("/api/v1/_probe/whoami", headers=bearer(token))

    assert {policy: rate_limited(policy) - before[policy] for policy in before} == {
        "ip": 2,
        "user": 1,
    }


def rate_limited(policy: str) -> float:
    return REGISTRY.get_sample_value("taskmesh_rate_limited_total", {"policy": policy}) or 0.0


async def test_each_user_has_a_limit_of_their_own(
    build_app: AppFactory, signing_key: Ed25519PrivateKey
) -> None:
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    async with client_for(build_app(user_limit=2, anon_limit=50)) as client:
        for _ in range(2):
            await client.get("/api/v1/_probe/whoami", headers=bearer(mint(signing_key, first)))
        refused = await client.get(
            "/api/v1/_probe/whoami", headers=bearer(mint(signing_key, first))
        )
        other = await client.get("/api/v1/_probe/whoami", headers=bearer(mint(signing_key, second)))
        anonymous = await client.get("/api/v1/_probe/public")

    assert refused.status_code == 429
    assert other.status_code == 200
    assert anonymous.status_code == 200


async def test_a_users_limit_spans_their_tokens_and_addresses(
    build_app: AppFactory, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    app = build_app(user_limit=2)
    answers = []
    for _ in range(3):
        async with client_for(app) as client:
            token = mint(signing_key, user_id)
            answers.append(await client.get("/api/v1/_probe/whoami", headers=bearer(token)))

    assert [answer.status_code for answer in answers] == [200, 200, 429]


async def test_concurrent_requests_pass_exactly_up_to_the_limit_across_two_instances(
    build_app: AppFactory, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    token = mint(signing_key, user_id)
    async with (
        client_for(build_app(user_limit=100)) as one,
        client_for(build_app(user_limit=100)) as two,
    ):
        answers = await asyncio.gather(
            *(
                (one if index % 2 else two).get("/api/v1/_probe/whoami", headers=bearer(token))
                for index in range(130)
            )
        )

    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == 100
    assert statuses.count(429) == 30


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(build_app: AppFactory) -> None:
    app = build_app(anon_limit=2)
    peer = f"203.0.113.{secrets.randbelow(250) + 1}"
    answers = []
    for _ in range(3):
        async with client_for(app, peer=peer) as client:
            answers.append(await client.get("/api/v1/_probe/public"))

    assert [answer.status_code for answer in answers] == [200, 200, 429]


async def test_forwarded_for_from_the_trusted_proxy_names_the_client(build_app: AppFactory) -> None:
    app = build_app(anon_limit=1)
    async with client_for(app, ip=fresh_ip()) as first, client_for(app, ip=fresh_ip()) as second:
        answers = [
            await first.get("/api/v1/_probe/public"),
            await second.get("/api/v1/_probe/public"),
            await first.get("/api/v1/_probe/public"),
        ]

    assert [answer.status_code for answer in answers] == [200, 200, 429]


async def test_revoked_token_is_charged_to_the_client_address(
    build_app: AppFactory, redis: Redis, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    token_id = uuid.uuid4().hex
    await redis.set(revoked_token_key(token_id), "1", ex=60)

    async with client_for(build_app()) as client:
        response = await client.get(
            "/api/v1/_probe/whoami", headers=bearer(mint(signing_key, user_id, jti=token_id))
        )

    assert response.headers["ratelimit-policy"] == '"ip";q=20;w=60'


class RecordingAuth(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    """AuthService answering GetMe and Logout; records each call's metadata."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    async def GetMe(self, request: auth_pb2.GetMeRequest, context: Any) -> auth_pb2.User:
        self.metadata.append(dict(context.invocation_metadata() or ()))
        user = auth_pb2.User(id="u1", email="ada@example.com", role=common_pb2.ROLE_USER)
        user.created_at.GetCurrentTime()
        return user

    async def Logout(self, request: auth_pb2.LogoutRequest, context: Any) -> Empty:
        self.metadata.append(dict(context.invocation_metadata() or ()))
        return Empty()


@pytest.fixture
async def recording_auth() -> AsyncIterator[tuple[RecordingAuth, str]]:
    servicer = RecordingAuth()
    server = grpc.aio.server()
    auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(None)


WithAuth = Callable[[], Awaitable[FastAPI]]


@pytest.fixture
async def app_with_auth(
    build_app: AppFactory, recording_auth: tuple[RecordingAuth, str], redis: Redis
) -> AsyncIterator[FastAPI]:
    _, target = recording_auth
    app = build_app()
    app.state.clients = ServiceClients.connect(GatewaySettings(auth_grpc_target=target))
    app.state.me_cache = MeCache(redis)
    yield app
    await app.state.clients.close()


async def test_verified_token_is_forwarded_to_the_service_with_the_identity(
    app_with_auth: FastAPI,
    recording_auth: tuple[RecordingAuth, str],
    signing_key: Ed25519PrivateKey,
    user_id: str,
) -> None:
    servicer, _ = recording_auth
    token = mint(signing_key, user_id, role="admin")
    async with client_for(app_with_auth) as client:
        response = await client.get("/api/v1/auth/me", headers=bearer(token))

    assert response.status_code == 200
    [metadata] = servicer.metadata
    assert metadata["authorization"] == f"Bearer {token}"
    assert (metadata["x-user-id"], metadata["x-user-role"]) == (user_id, "admin")


async def test_me_is_cached_per_token_in_redis(
    app_with_auth: FastAPI,
    recording_auth: tuple[RecordingAuth, str],
    redis: Redis,
    signing_key: Ed25519PrivateKey,
    user_id: str,
) -> None:
    servicer, _ = recording_auth
    first_token, second_token = mint(signing_key, user_id), mint(signing_key, user_id)
    async with client_for(app_with_auth) as client:
        answers = [
            await client.get("/api/v1/auth/me", headers=bearer(token))
            for token in (first_token, first_token, second_token)
        ]
        await redis.delete(f"taskmesh:me:{user_id}")
        after_change = await client.get("/api/v1/auth/me", headers=bearer(first_token))

    assert [answer.headers["x-cache"] for answer in answers] == ["MISS", "HIT", "MISS"]
    assert answers[1].json() == answers[0].json()
    assert after_change.headers["x-cache"] == "MISS"
    assert len(servicer.metadata) == 3


async def test_me_cache_expires_after_15_minutes(
    app_with_auth: FastAPI, redis: Redis, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    async with client_for(app_with_auth) as client:
        await client.get("/api/v1/auth/me", headers=bearer(mint(signing_key, user_id)))

    assert 890 < await redis.ttl(f"taskmesh:me:{user_id}") <= 900


async def test_logout_drops_the_me_cache_and_passes_the_tokens_expiry(
    app_with_auth: FastAPI, redis: Redis, signing_key: Ed25519PrivateKey, user_id: str
) -> None:
    expires_at = time.time() + 600
    token = mint(signing_key, user_id, exp=expires_at)
    async with client_for(app_with_auth) as client:
        await client.get("/api/v1/auth/me", headers=bearer(token))
        response = await client.post("/api/v1/auth/logout", headers=bearer(token))

    assert response.status_code == 204
    assert await redis.exists(f"taskmesh:me:{user_id}") == 0


def caller_with(user_id: str, *, issued_at: float | None = None) -> Caller:
    now = time.time()
    return Caller(
        user_id=user_id,
        role="user",
        token_id=uuid.uuid4().hex,
        session_id=uuid.uuid4().hex,
        issued_at=now if issued_at is None else issued_at,
        expires_at=now + 900,
        token="token",
    )


async def test_open_sockets_tokens_are_checked_by_the_admission_rule(
    build_app: AppFactory, redis: Redis
) -> None:
    gatekeeper: Gatekeeper = build_app().state.gatekeeper
    now = time.time()
    users = [uuid.uuid4().hex[:24] for _ in range(4)]
    by_jti, by_sid, unreadable = caller_with(users[0]), caller_with(users[1]), caller_with(users[3])
    issued_before = caller_with(users[2], issued_at=now - 10)
    valid = [caller_with(uuid.uuid4().hex[:24]) for _ in range(REVOCATION_BATCH * 2 + 1)]
    await redis.set(revoked_token_key(by_jti.token_id), "1", ex=60)
    await redis.set(revoked_session_key(by_sid.session_id), "1", ex=60)
    await redis.set(not_before_key(users[2]), repr(now), ex=60)
    await redis.set(not_before_key(users[3]), "not-a-number", ex=60)

    revoked = await gatekeeper.revoked([*valid, by_jti, by_sid, issued_before, unreadable])

    assert revoked == {c.token_id for c in (by_jti, by_sid, issued_before, unreadable)}


async def test_checking_no_tokens_asks_nothing() -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{find_free_port()}/0")
    gatekeeper = Gatekeeper(
        TokenVerifier(StaticJwksProvider({}), issuer=ISSUER, audience=AUDIENCE),
        dead,
        user_limit_per_min=1,
        anonymous_limit_per_min=1,
    )

    assert await gatekeeper.revoked([]) == set()
    await dead.aclose()
