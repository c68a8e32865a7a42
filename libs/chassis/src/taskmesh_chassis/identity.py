"""Who is calling: access-token verification, the current caller, and the gRPC identity check.

The auth service signs access tokens (EdDSA JWTs, RFC 9068 `typ: at+jwt`); every other process
verifies them locally against the public keys auth publishes (`AuthService.GetJwks`), so no
request needs a round trip to auth. The gateway verifies the client's token and forwards it as
`authorization` metadata; each service verifies it again (`identity_scope`), so calling a
service port directly with no or a forged identity gets no caller, and any RPC that needs one
answers UNAUTHENTICATED. `x-user-id` alone never makes a caller.

Revocation (logout, password change, deactivation) is checked by the gateway against Redis,
under the keys below, which the auth service writes.
"""

from __future__ import annotations

import asyncio
import binascii
import json
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol, TypeGuard

import grpc
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.utils import base64url_decode
from taskmesh.auth.v1 import auth_pb2

from taskmesh_chassis.context import (
    USER_ID_KEY,
    USER_ROLE_KEY,
    bind_request,
    current_request,
)
from taskmesh_chassis.errors import DomainError, PermissionDenied, Unauthenticated

log = structlog.get_logger(__name__)

Role = Literal["user", "admin"]
ROLES: Final[frozenset[str]] = frozenset({"user", "admin"})

AUTHORIZATION_KEY: Final = "authorization"
ALGORITHM: Final = "EdDSA"
TOKEN_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
"""Accepted `typ` header values (RFC 9068 §4), compared case-insensitively."""
REQUIRED_CLAIMS: Final = ("iss", "aud", "sub", "role", "iat", "exp", "jti", "sid")
MAX_TOKEN_CHARS: Final = 4096
"""Longer is not one of ours; refused before any parsing."""

INVALID_MESSAGE: Final = "the access token is invalid"
EXPIRED_MESSAGE: Final = "the access token has expired"
REVOKED_MESSAGE: Final = "the access token has been revoked"


def revoked_token_key(token_id: str) -> str:
    """Redis key that exists while the access token `jti` is revoked (written by auth)."""
    return f"taskmesh:revoked:jti:{token_id}"


def revoked_session_key(session_id: str) -> str:
    """Redis key that exists while every token of the login session `sid` is revoked."""
    return f"taskmesh:revoked:sid:{session_id}"


def not_before_key(user_id: str) -> str:
    """Redis key holding epoch seconds (float): the user's tokens issued before it are revoked."""
    return f"taskmesh:user:{user_id}:not_before"


def me_cache_key(user_id: str) -> str:
    """Redis hash caching `GET /auth/me` per token: field `jti`, value the JSON User."""
    return f"taskmesh:me:{user_id}"


class KeySetUnavailable(DomainError):
    """The signing keys cannot be fetched (auth is down), so no token can be verified now."""

    status_code = grpc.StatusCode.UNAVAILABLE
    default_message = "the token signing keys are unavailable"


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated user a request acts for, as its verified access token says."""

    user_id: str
    role: Role
    token_id: str
    session_id: str
    issued_at: float
    expires_at: float
    token: str = field(repr=False)
    """The raw access token, forwarded to the services; never logged."""

    @property
    def is_admin(self) -> bool:
        """Whether the caller has the admin role."""
        return self.role == "admin"

    def forwarded_metadata(self) -> list[tuple[str, str]]:
        """gRPC metadata presenting this caller to another service."""
        return [
            (AUTHORIZATION_KEY, f"Bearer {self.token}"),
            (USER_ID_KEY, self.user_id),
            (USER_ROLE_KEY, self.role),
        ]


class JwksProvider(Protocol):
    """Where a verifier finds the public key named by a token's `kid`."""

    async def get_key(self, kid: str) -> Ed25519PublicKey:
        """The key named `kid`.

        Raises Unauthenticated for a kid that is not published, KeySetUnavailable when the
        key set cannot be obtained at all.
        """
        ...


class StaticJwksProvider:
    """A fixed set of keys: for the auth service's own keys, and for tests."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)

    async def get_key(self, kid: str) -> Ed25519PublicKey:
        """The key named `kid`; Unauthenticated if there is none."""
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated(INVALID_MESSAGE)
        return key


class JwksSource(Protocol):
    """The part of the AuthService stub a GrpcJwksProvider uses."""

    def GetJwks(self, request: auth_pb2.GetJwksRequest, *, timeout: float | None = None) -> Any:
        """Call AuthService.GetJwks."""
        ...


def parse_jwks(jwks: auth_pb2.Jwks) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 verification keys of a key set, by kid; keys of other kinds are skipped."""
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in jwks.keys:
        usable = (
            jwk.kid
            and jwk.kty == "OKP"
            and jwk.crv == "Ed25519"
            and jwk.alg in ("", ALGORITHM)
            and jwk.use in ("", "sig")
        )
        if not usable:
            log.info("jwks.key_skipped", kid=jwk.kid, kty=jwk.kty, alg=jwk.alg)
            continue
        try:
            raw = base64url_decode(jwk.x.encode("ascii"))
            keys[jwk.kid] = Ed25519PublicKey.from_public_bytes(raw)
        except (ValueError, binascii.Error, UnicodeEncodeError):
            log.warning("jwks.key_malformed", kid=jwk.kid)
    return keys


class GrpcJwksProvider:
    """The published keys, fetched from AuthService.GetJwks and parsed once.

    An unknown kid (a key rotated in) triggers a refetch, at most one per
    `min_refetch_interval_s` (`retry_after_failure_s` after a failed fetch) and one at a time,
    so forged kids cannot hammer auth. Keys older than `max_age_s` are refreshed in the
    background while still being served, so a retired key stops verifying within that time.
    """

    def __init__(
        self,
        source: JwksSource,
        *,
        min_refetch_interval_s: float = 5.0,
        retry_after_failure_s: float = 1.0,
        max_age_s: float = 300.0,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._min_refetch_interval_s = min_refetch_interval_s
        self._retry_after_failure_s = retry_after_failure_s
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at = -math.inf
        self._last_fetch_failed = False
        self._fetching: asyncio.Task[None] | None = None

    async def get_key(self, kid: str) -> Ed25519PublicKey:
        """The key named `kid`, fetching the key set when it is not known yet."""
        now = self._clock()
        key = self._keys.get(kid)
        if key is not None:
            if self._is_stale(now) and self._may_fetch(now):
                self._start_fetch(now)
            return key
        if self._fetching is None and self._may_fetch(now):
            self._start_fetch(now)
        if self._fetching is not None:
            await asyncio.shield(self._fetching)
            key = self._keys.get(kid)
            if key is not None:
                return key
        if self._last_fetch_failed:
            raise KeySetUnavailable()
        log.info("token.unknown_kid", kid=kid[:64])
        raise Unauthenticated(INVALID_MESSAGE)

    def _is_stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at > self._max_age_s

    def _may_fetch(self, now: float) -> bool:
        # After a failure auth may be back any moment; its refusal costs it nothing then.
        interval = (
            self._retry_after_failure_s if self._last_fetch_failed else self._min_refetch_interval_s
        )
        return self._fetching is None and now - self._attempted_at >= interval

    def _start_fetch(self, now: float) -> None:
        self._attempted_at = now
        self._fetching = asyncio.create_task(self._fetch(), name="jwks-fetch")

    async def _fetch(self) -> None:
        try:
            reply = await self._source.GetJwks(auth_pb2.GetJwksRequest(), timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            self._last_fetch_failed = True
            log.warning("jwks.fetch_failed", grpc_code=error.code().name)
        else:
            self._keys = parse_jwks(reply)
            self._fetched_at = self._clock()
            self._last_fetch_failed = False
            log.info("jwks.fetched", kids=sorted(self._keys))
        finally:
            self._fetching = None


class TokenVerifier:
    """Verifies access tokens: EdDSA only, `typ: at+jwt`, issuer, audience, every claim present.

    A client presents the same token on every request for its lifetime, so the outcome of a
    successful verification is remembered (a bounded LRU of `cache_size` tokens, as Envoy's
    jwt_authn does): a remembered token is accepted again without redoing the signature
    check, as long as it has not expired and its key is still the one published under its
    kid. Failures are never remembered. Revocation is not the verifier's concern: the gateway
    checks it on every request.
    """

    def __init__(
        self,
        provider: JwksProvider,
        *,
        issuer: str,
        audience: str,
        leeway_s: float = 5.0,
        cache_size: int = 8192,
    ) -> None:
        self._provider = provider
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s
        self._cache_size = cache_size
        self._verified: OrderedDict[str, tuple[Caller, str, Ed25519PublicKey]] = OrderedDict()
        self._jwt = jwt.PyJWT({"require": list(REQUIRED_CLAIMS)})

    async def verify(self, token: str) -> Caller:
        """The caller the token names; Unauthenticated if it is not a valid access token of ours."""
        remembered = self._verified.pop(token, None)
        if remembered is not None:
            caller, kid, key = remembered
            if (
                # Whole seconds of `exp`, as PyJWT compares them.
                time.time() < int(caller.expires_at) + self._leeway_s
                and await self._provider.get_key(kid) is key
            ):
                self._verified[token] = remembered
                return caller
        kid = _kid_of(token)
        key = await self._provider.get_key(kid)
        try:
            claims = self._jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated(EXPIRED_MESSAGE) from None
        except jwt.InvalidTokenError as error:
            log.info("token.rejected", reason=type(error).__name__)
            raise Unauthenticated(INVALID_MESSAGE) from None
        caller = _caller_from(claims, token)
        if self._cache_size > 0:
            self._verified[token] = (caller, kid, key)
            if len(self._verified) > self._cache_size:
                self._verified.popitem(last=False)
        return caller


def _kid_of(token: str) -> str:
    """The `kid` of a token whose header is one of ours; Unauthenticated otherwise.

    Checked before any key lookup, so that `alg: none`, HMAC algorithms, foreign token types
    and opaque strings (a refresh token) never reach the key set.
    """
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        log.info("token.rejected", reason="malformed")
        raise Unauthenticated(INVALID_MESSAGE)
    try:
        header = json.loads(base64url_decode(token.partition(".")[0].encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        log.info("token.rejected", reason="malformed_header")
        raise Unauthenticated(INVALID_MESSAGE) from None
    if not isinstance(header, dict):
        log.info("token.rejected", reason="malformed_header")
        raise Unauthenticated(INVALID_MESSAGE)
    typ, kid = header.get("typ"), header.get("kid")
    reason = None
    if header.get("alg") != ALGORITHM:
        reason = "algorithm"
    elif not isinstance(typ, str) or typ.lower() not in TOKEN_TYPES:
        reason = "type"
    elif not isinstance(kid, str) or not kid:
        reason = "kid"
    elif "crit" in header:
        reason = "crit"
    if reason is not None:
        log.info("token.rejected", reason=reason)
        raise Unauthenticated(INVALID_MESSAGE)
    assert isinstance(kid, str)
    return kid


def _caller_from(claims: dict[str, Any], token: str) -> Caller:
    subject, role = claims.get("sub"), claims.get("role")
    token_id, session_id = claims.get("jti"), claims.get("sid")
    issued_at, expires_at = claims.get("iat"), claims.get("exp")
    if not (
        isinstance(subject, str)
        and isinstance(token_id, str)
        and isinstance(session_id, str)
        and subject
        and token_id
        and session_id
        and (role == "user" or role == "admin")
        and _is_number(issued_at)
        and _is_number(expires_at)
    ):
        log.info("token.rejected", reason="claims")
        raise Unauthenticated(INVALID_MESSAGE)
    return Caller(
        user_id=subject,
        role=role,
        token_id=token_id,
        session_id=session_id,
        issued_at=float(issued_at),
        expires_at=float(expires_at),
        token=token,
    )


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


_current_caller: ContextVar[Caller | None] = ContextVar("taskmesh_current_caller", default=None)


def bind_caller(caller: Caller | None) -> None:
    """Make `caller` (None: anonymous) the caller of this request, of its logs and its calls."""
    _current_caller.set(caller)
    request = current_request()
    user_id = caller.user_id if caller is not None else None
    role = caller.role if caller is not None else None
    if request is not None:
        if (request.user_id, request.user_role) != (user_id, role):
            bind_request(replace(request, user_id=user_id, user_role=role))
    elif user_id is not None:
        structlog.contextvars.bind_contextvars(user_id=user_id)


def current_caller() -> Caller | None:
    """The verified caller of this request, or None when it is anonymous."""
    return _current_caller.get()


def require_caller() -> Caller:
    """The verified caller; Unauthenticated when the request carries no valid access token."""
    caller = _current_caller.get()
    if caller is None:
        raise Unauthenticated("a valid access token is required")
    return caller


def require_admin() -> Caller:
    """The verified caller, who must be an admin (PermissionDenied otherwise)."""
    caller = require_caller()
    if not caller.is_admin:
        raise PermissionDenied("only admins may do this")
    return caller


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` value; None for any other scheme."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


async def caller_from_metadata(
    verifier: TokenVerifier, metadata: Iterable[tuple[str, str | bytes]]
) -> Caller | None:
    """The caller presented by gRPC metadata: None without `authorization`, else verified.

    `x-user-id`/`x-user-role`, when sent, must agree with the token.
    """
    received = {key: value for key, value in metadata if isinstance(value, str)}
    authorization = received.get(AUTHORIZATION_KEY)
    if authorization is None:
        return None
    token = bearer_token(authorization)
    if not token:
        raise Unauthenticated(INVALID_MESSAGE)
    caller = await verifier.verify(token)
    claimed_id, claimed_role = received.get(USER_ID_KEY), received.get(USER_ROLE_KEY)
    if (claimed_id is not None and claimed_id != caller.user_id) or (
        claimed_role is not None and claimed_role != caller.role
    ):
        log.warning("token.identity_mismatch", user_id=caller.user_id)
        raise Unauthenticated(INVALID_MESSAGE)
    return caller


def identity_scope(
    verifier: TokenVerifier,
) -> Callable[[str, Any], AbstractAsyncContextManager[None]]:
    """A gRPC handler scope that verifies the caller's token and binds the Caller.

    No `authorization` metadata: the RPC runs anonymously (and `x-user-id` is ignored);
    a bad token: UNAUTHENTICATED, whatever the RPC.
    """

    @asynccontextmanager
    async def scope(method: str, context: Any) -> AsyncIterator[None]:
        bind_caller(await caller_from_metadata(verifier, context.invocation_metadata() or ()))
        yield

    return scope
