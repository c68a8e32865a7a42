"""Access-token verification, the JWKS cache, the current caller and the gRPC identity check."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from taskmesh.auth.v1 import auth_pb2
from taskmesh_chassis.context import RequestContext, bind_request
from taskmesh_chassis.errors import PermissionDenied, Unauthenticated
from taskmesh_chassis.grpc_client import create_channel
from taskmesh_chassis.grpc_server import GrpcServer, ServicerRegistration
from taskmesh_chassis.identity import (
    REQUIRED_CLAIMS,
    Caller,
    GrpcJwksProvider,
    KeySetUnavailable,
    StaticJwksProvider,
    TokenVerifier,
    bearer_token,
    bind_caller,
    current_caller,
    parse_jwks,
    require_admin,
    require_caller,
)
from taskmesh_chassis.testing import capture_logs

ISSUER = "taskmesh"
AUDIENCE = "taskmesh-api"
USER_ID = "665f1c2e9b1e8a0012345678"
WHOAMI = "test.v1.Whoami"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_x(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return b64url(raw)


def claims(**changes: Any) -> dict[str, Any]:
    now = time.time()
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": USER_ID,
        "role": "user",
        "iat": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "sid": uuid.uuid4().hex,
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def mint(
    key: Ed25519PrivateKey, kid: str = "k1", header: dict[str, Any] | None = None, **changes: Any
) -> str:
    headers = {"kid": kid, "typ": "at+jwt", **(header or {})}
    return jwt.encode(claims(**changes), key, algorithm="EdDSA", headers=headers)


def hand_made(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(signature)}"


@pytest.fixture(scope="module")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def verifier(signing_key: Ed25519PrivateKey) -> TokenVerifier:
    provider = StaticJwksProvider({"k1": signing_key.public_key()})
    return TokenVerifier(provider, issuer=ISSUER, audience=AUDIENCE, leeway_s=5)


async def test_valid_token_names_its_caller(
    verifier: TokenVerifier, signing_key: Ed25519PrivateKey
) -> None:
    token = mint(signing_key, role="admin", jti="jti-1", sid="sid-1", iat=1e9 + 0.5, exp=4e9)

    caller = await verifier.verify(token)

    assert caller == Caller(USER_ID, "admin", "jti-1", "sid-1", 1e9 + 0.5, 4e9, token)
    assert caller.is_admin


async def test_caller_repr_never_shows_the_token(
    verifier: TokenVerifier, signing_key: Ed25519PrivateKey
) -> None:
    token = mint(signing_key)

    assert token not in repr(await verifier.verify(token))


async def test_application_at_jwt_type_is_accepted(
    verifier: TokenVerifier, signing_key: Ed25519PrivateKey
) -> None:
    caller = await verifier.verify(mint(signing_key, header={"typ": "application/AT+JWT"}))

    assert caller.user_id == USER_ID


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hs256_with_public_key(key: Ed25519PrivateKey) -> str:
    header = {"alg": "HS256", "typ": "at+jwt", "kid": "k1"}
    unsigned = hand_made(header, claims()).rsplit(".", 1)[0]
    signature = hmac.new(public_pem(key), unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64url(signature)}"


def tampered(key: Ed25519PrivateKey) -> str:
    header, _, signature = mint(key).split(".")
    forged = b64url(json.dumps(claims(role="admin")).encode())
    return f"{header}.{forged}.{signature}"


REJECTED = {
    "empty": lambda key: "",
    "not a jwt": lambda key: "hello",
    "two segments": lambda key: "a.b",
    "garbage header": lambda key: "!!!.e30.",
    "header not an object": lambda key: f"{b64url(b'[1]')}.e30.",
    "refresh token": lambda key: secrets.token_urlsafe(32),
    "alg none": lambda key: hand_made({"alg": "none", "typ": "at+jwt", "kid": "k1"}, claims()),
    "alg none, no kid": lambda key: hand_made({"alg": "none", "typ": "at+jwt"}, claims()),
    "hs256 with the public key": hs256_with_public_key,
    "tampered payload": tampered,
    "other key, same kid": lambda key: mint(Ed25519PrivateKey.generate()),
    "kid not in jwks": lambda key: mint(key, kid="k-unknown"),
    "missing typ": lambda key: jwt.encode(claims(), key, algorithm="EdDSA", headers={"kid": "k1"}),
    "plain jwt typ": lambda key: mint(key, header={"typ": "JWT"}),
    "missing kid": lambda key: jwt.encode(
        claims(), key, algorithm="EdDSA", headers={"typ": "at+jwt"}
    ),
    "crit header": lambda key: mint(key, header={"crit": ["exp"]}),
    "expired": lambda key: mint(key, iat=time.time() - 1000, exp=time.time() - 60),
    "wrong audience": lambda key: mint(key, aud="someone-else"),
    "wrong issuer": lambda key: mint(key, iss="https://evil.example"),
    "issued in the future": lambda key: mint(key, iat=time.time() + 600),
    "unknown role": lambda key: mint(key, role="superuser"),
    "empty subject": lambda key: mint(key, sub=""),
    "numeric subject": lambda key: mint(key, sub=42),
    "too long": lambda key: mint(key, sub="x" * 5000),
    **{
        f"missing {claim}": (lambda key, claim=claim: mint(key, **{claim: None}))
        for claim in REQUIRED_CLAIMS
    },
}


@pytest.mark.parametrize("case", sorted(REJECTED))
async def test_token_is_rejected_as_unauthenticated(
    verifier: TokenVerifier, signing_key: Ed25519PrivateKey, case: str
) -> None:
    token = REJECTED[case](signing_key)

    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_expired_token_says_it_expired(
    verifier: TokenVerifier, signing_key: Ed25519PrivateKey
) -> None:
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(mint(signing_key, iat=time.time() - 1000, exp=time.time() - 60))


async def test_token_expired_within_the_leeway_is_accepted(
    verifier: TokenVerifier, signing_key: Ed25519PrivateKey
) -> None:
    caller = await verifier.verify(mint(signing_key, exp=time.time() - 2))

    assert caller.user_id == USER_ID


async def test_rejection_is_logged_without_the_token(
    verifier: TokenVerifier, signing_key: Ed25519PrivateKey
) -> None:
    logs = capture_logs("test")
    token = mint(signing_key, aud="someone-else")

    with pytest.raises(Unauthenticated):
        await verifier.verify(token)

    assert logs.events("token.rejected")
    assert token not in json.dumps(logs.lines())
    assert token.split(".")[2] not in json.dumps(logs.lines())


class DecodeCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        decode = jwt.PyJWT.decode

        def counting(verifier: jwt.PyJWT, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return decode(verifier, *args, **kwargs)

        monkeypatch.setattr(jwt.PyJWT, "decode", counting)


async def test_a_verified_token_is_accepted_again_without_a_second_signature_check(
    verifier: TokenVerifier, signing_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes = DecodeCounter(monkeypatch)
    token = mint(signing_key)

    first, second = await verifier.verify(token), await verifier.verify(token)

    assert second == first
    assert decodes.calls == 1


async def test_failures_are_not_remembered(
    verifier: TokenVerifier, signing_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes = DecodeCounter(monkeypatch)
    token = mint(signing_key, aud="someone-else")

    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await verifier.verify(token)

    assert decodes.calls == 2


async def test_a_remembered_token_still_expires(signing_key: Ed25519PrivateKey) -> None:
    verifier = TokenVerifier(
        StaticJwksProvider({"k1": signing_key.public_key()}),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_s=0,
    )
    expires_at = time.time() + 2
    token = mint(signing_key, exp=expires_at)
    await verifier.verify(token)
    await asyncio.sleep(expires_at - time.time() + 0.1)

    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)


async def test_a_remembered_token_stops_verifying_when_its_key_is_withdrawn(
    signing_key: Ed25519PrivateKey,
) -> None:
    keys = {"k1": signing_key.public_key()}
    verifier = TokenVerifier(StaticJwksProvider(keys), issuer=ISSUER, audience=AUDIENCE)
    token = mint(signing_key)
    await verifier.verify(token)
    verifier._provider = StaticJwksProvider({"k1": Ed25519PrivateKey.generate().public_key()})

    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


async def test_only_the_most_recent_tokens_are_remembered(
    signing_key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = TokenVerifier(
        StaticJwksProvider({"k1": signing_key.public_key()}),
        issuer=ISSUER,
        audience=AUDIENCE,
        cache_size=2,
    )
    first, second, third = mint(signing_key), mint(signing_key), mint(signing_key)
    for token in (first, second, third):
        await verifier.verify(token)
    decodes = DecodeCounter(monkeypatch)

    await verifier.verify(third)
    await verifier.verify(first)

    assert decodes.calls == 1


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", "")],
)
def test_bearer_token_is_read_from_the_authorization_value(
    authorization: str, expected: str | None
) -> None:
    assert bearer_token(authorization) == expected


class FakeAuth:
    """AuthService.GetJwks answering `keys`, counting calls; `down` fails them as UNAVAILABLE."""

    def __init__(self, keys: dict[str, Ed25519PrivateKey]) -> None:
        self.keys = keys
        self.calls = 0
        self.down = False
        self.delay_s = 0.0

    async def GetJwks(
        self,
        request: auth_pb2.GetJwksRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the stub's signature
    ) -> auth_pb2.Jwks:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.down:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata()
            )
        return auth_pb2.Jwks(
            keys=[
                auth_pb2.Jwk(
                    kid=kid, kty="OKP", crv="Ed25519", alg="EdDSA", use="sig", x=public_x(key)
                )
                for kid, key in self.keys.items()
            ]
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def provider_for(auth: FakeAuth, clock: Clock) -> GrpcJwksProvider:
    return GrpcJwksProvider(auth, min_refetch_interval_s=5, max_age_s=300, clock=clock)


def test_parse_jwks_keeps_only_ed25519_signing_keys(signing_key: Ed25519PrivateKey) -> None:
    x = public_x(signing_key)
    jwks = auth_pb2.Jwks(
        keys=[
            auth_pb2.Jwk(kid="ok", kty="OKP", crv="Ed25519", alg="EdDSA", use="sig", x=x),
            auth_pb2.Jwk(kid="rsa", kty="RSA", alg="RS256", use="sig", n="AQAB", e="AQAB"),
            auth_pb2.Jwk(kid="enc", kty="OKP", crv="Ed25519", alg="EdDSA", use="enc", x=x),
            auth_pb2.Jwk(kid="short", kty="OKP", crv="Ed25519", alg="EdDSA", x="AAAA"),
        ]
    )

    keys = parse_jwks(jwks)

    assert list(keys) == ["ok"]
    assert isinstance(keys["ok"], Ed25519PublicKey)


async def test_keys_are_fetched_once_and_reused(
    signing_key: Ed25519PrivateKey, clock: Clock
) -> None:
    auth = FakeAuth({"k1": signing_key})
    provider = provider_for(auth, clock)

    first = await provider.get_key("k1")
    clock.now += 60
    second = await provider.get_key("k1")

    assert first is second
    assert auth.calls == 1


async def test_unknown_kid_refetches_and_finds_a_rotated_key(
    signing_key: Ed25519PrivateKey, clock: Clock
) -> None:
    auth = FakeAuth({"k1": signing_key})
    provider = provider_for(auth, clock)
    await provider.get_key("k1")
    auth.keys["k2"] = Ed25519PrivateKey.generate()
    clock.now += 10

    key = await provider.get_key("k2")

    assert key.public_bytes_raw() == auth.keys["k2"].public_key().public_bytes_raw()
    assert await provider.get_key("k1") is not None
    assert auth.calls == 2


async def test_unknown_kids_refetch_at_most_once_per_interval(
    signing_key: Ed25519PrivateKey, clock: Clock
) -> None:
    auth = FakeAuth({"k1": signing_key})
    provider = provider_for(auth, clock)
    await provider.get_key("k1")
    clock.now += 10

    for attempt in range(50):
        with pytest.raises(Unauthenticated):
            await provider.get_key(f"forged-{attempt}")
        clock.now += 0.05

    assert auth.calls == 2


async def test_concurrent_unknown_kids_share_one_fetch(
    signing_key: Ed25519PrivateKey, clock: Clock
) -> None:
    auth = FakeAuth({"k1": signing_key})
    auth.delay_s = 0.05
    provider = provider_for(auth, clock)

    keys = await asyncio.gather(*(provider.get_key("k1") for _ in range(20)))

    assert len({id(key) for key in keys}) == 1
    assert auth.calls == 1


async def test_auth_down_with_no_keys_is_unavailable_not_unauthenticated(
    signing_key: Ed25519PrivateKey, clock: Clock
) -> None:
    auth = FakeAuth({"k1": signing_key})
    auth.down = True
    provider = provider_for(auth, clock)

    with pytest.raises(KeySetUnavailable):
        await provider.get_key("k1")

    auth.down = False
    clock.now += 1
    assert await provider.get_key("k1") is not None


async def test_fetches_while_auth_is_down_are_at_most_one_a_second(
    signing_key: Ed25519PrivateKey, clock: Clock
) -> None:
    auth = FakeAuth({"k1": signing_key})
    auth.down = True
    provider = provider_for(auth, clock)

    for _ in range(20):
        with pytest.raises(KeySetUnavailable):
            await provider.get_key("k1")
        clock.now += 0.1

    assert auth.calls == 2


async def test_stale_keys_are_served_while_refreshed_and_retired_keys_drop_out(
    signing_key: Ed25519PrivateKey, clock: Clock
) -> None:
    auth = FakeAuth({"k1": signing_key})
    provider = provider_for(auth, clock)
    await provider.get_key("k1")
    auth.keys = {"k2": Ed25519PrivateKey.generate()}
    clock.now += 301

    assert await provider.get_key("k1") is not None
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    clock.now += 1

    with pytest.raises(Unauthenticated):
        await provider.get_key("k1")
    assert auth.calls == 2


async def test_verifier_with_grpc_provider_accepts_tokens_of_every_published_key(
    clock: Clock,
) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    auth = FakeAuth({"old": old, "new": new})
    verifier = TokenVerifier(provider_for(auth, clock), issuer=ISSUER, audience=AUDIENCE)

    assert (await verifier.verify(mint(old, kid="old"))).user_id == USER_ID
    assert (await verifier.verify(mint(new, kid="new"))).user_id == USER_ID


def a_caller(role: str = "user") -> Caller:
    return Caller(USER_ID, role, "jti-1", "sid-1", 1.0, 2.0, "token-1")  # type: ignore[arg-type]


async def test_request_is_anonymous_until_a_caller_is_bound() -> None:
    assert current_caller() is None
    with pytest.raises(Unauthenticated):
        require_caller()


async def test_bound_caller_is_current_and_in_the_log_context() -> None:
    logs = capture_logs("test")
    bind_request(RequestContext("req-1"))

    bind_caller(a_caller())
    import structlog

    structlog.get_logger("test").info("something.happened")

    assert require_caller().user_id == USER_ID
    [line] = logs.events("something.happened")
    assert line["user_id"] == USER_ID
    assert "token-1" not in json.dumps(line)


async def test_require_admin_refuses_a_plain_user() -> None:
    bind_caller(a_caller("user"))

    with pytest.raises(PermissionDenied):
        require_admin()


async def test_require_admin_accepts_an_admin() -> None:
    bind_caller(a_caller("admin"))

    assert require_admin().is_admin


class Whoami:
    """A servicer answering the verified caller's id, or UNAUTHENTICATED via require_caller."""

    def __init__(self) -> None:
        self.seen: list[tuple[Caller | None, str | None]] = []

    async def get(self, request: bytes, context: Any) -> bytes:
        from taskmesh_chassis.context import current_request

        caller = current_caller()
        request_context = current_request()
        self.seen.append((caller, request_context.user_id if request_context else None))
        return require_caller().user_id.encode()

    async def stream(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield require_caller().user_id.encode()

    def registration(self) -> ServicerRegistration:
        handlers = {
            "Get": grpc.unary_unary_rpc_method_handler(self.get),
            "Stream": grpc.unary_stream_rpc_method_handler(self.stream),
        }
        generic = grpc.method_handlers_generic_handler(WHOAMI, handlers)

        def add_to_server(_: object, server: Any) -> None:
            server.add_generic_rpc_handlers((generic,))

        return ServicerRegistration(add_to_server, self, WHOAMI)


@pytest.fixture
def whoami() -> Whoami:
    return Whoami()


@pytest.fixture
async def whoami_server(whoami: Whoami, verifier: TokenVerifier) -> AsyncIterator[GrpcServer]:
    server = GrpcServer([whoami.registration()], host="127.0.0.1", port=0, verifier=verifier)
    await server.start()
    yield server
    await server.stop(0)


@pytest.fixture
async def whoami_channel(whoami_server: GrpcServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{whoami_server.port}") as channel:
        yield channel


async def call_whoami(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()
) -> bytes:
    answer: bytes = await channel.unary_unary(f"/{WHOAMI}/Get")(b"", metadata=metadata, timeout=5)
    return answer


async def test_rpc_with_a_valid_token_runs_as_its_caller(
    whoami_channel: grpc.aio.Channel, whoami: Whoami, signing_key: Ed25519PrivateKey
) -> None:
    logs = capture_logs("test")
    token = mint(signing_key)

    answer = await call_whoami(whoami_channel, (("authorization", f"Bearer {token}"),))

    assert answer == USER_ID.encode()
    [(caller, logged_user)] = whoami.seen
    assert caller is not None
    assert caller.token == token
    assert logged_user == USER_ID
    [access_line] = logs.events("rpc.handled")
    assert access_line["user_id"] == USER_ID


async def test_rpc_without_a_token_needing_a_caller_is_unauthenticated(
    whoami_channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call_whoami(whoami_channel)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_user_id_metadata_alone_makes_no_caller(
    whoami_channel: grpc.aio.Channel, whoami: Whoami
) -> None:
    metadata = (("x-user-id", USER_ID), ("x-user-role", "admin"))

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call_whoami(whoami_channel, metadata)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert whoami.seen == [(None, None)]


@pytest.mark.parametrize(
    "metadata",
    [
        (("authorization", "Bearer not-a-jwt"),),
        (("authorization", "Bearer "),),
        (("authorization", "Basic dXNlcjpwYXNz"),),
    ],
)
async def test_rpc_with_a_bad_token_is_unauthenticated_before_the_handler_runs(
    whoami_channel: grpc.aio.Channel, whoami: Whoami, metadata: tuple[tuple[str, str], ...]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call_whoami(whoami_channel, metadata)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert whoami.seen == []


async def test_forged_token_is_unauthenticated_on_streaming_rpcs_too(
    whoami_channel: grpc.aio.Channel, signing_key: Ed25519PrivateKey
) -> None:
    stream = whoami_channel.unary_stream(f"/{WHOAMI}/Stream")(
        b"", metadata=(("authorization", f"Bearer {tampered(signing_key)}"),), timeout=5
    )

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        _ = [answer async for answer in stream]

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_user_id_metadata_contradicting_the_token_is_unauthenticated(
    whoami_channel: grpc.aio.Channel, signing_key: Ed25519PrivateKey
) -> None:
    metadata = (
        ("authorization", f"Bearer {mint(signing_key)}"),
        ("x-user-id", "someone-else"),
    )

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call_whoami(whoami_channel, metadata)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_role_metadata_contradicting_the_token_is_unauthenticated(
    whoami_channel: grpc.aio.Channel, signing_key: Ed25519PrivateKey
) -> None:
    metadata = (("authorization", f"Bearer {mint(signing_key)}"), ("x-user-role", "admin"))

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call_whoami(whoami_channel, metadata)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_outgoing_calls_forward_the_bound_caller(
    whoami_server: GrpcServer, signing_key: Ed25519PrivateKey, whoami: Whoami
) -> None:
    token = mint(signing_key)
    channel = create_channel(
        f"127.0.0.1:{whoami_server.port}",
        service_full_name=WHOAMI,
        idempotent_methods=[],
        default_timeout_s=5,
    )
    bind_request(RequestContext("req-1"))
    bind_caller(
        await TokenVerifier(
            StaticJwksProvider({"k1": signing_key.public_key()}), issuer=ISSUER, audience=AUDIENCE
        ).verify(token)
    )

    async with channel:
        answer = await channel.unary_unary(f"/{WHOAMI}/Get")(b"")

    assert answer == USER_ID.encode()
    [(caller, _)] = whoami.seen
    assert caller is not None
    assert caller.token == token
