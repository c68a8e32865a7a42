"""Admission of API requests: who is calling, is that token still good, and may they go on.

`AdmissionMiddleware` (pure ASGI, innermost) runs before routing for every request on a
rate-limited path. `Gatekeeper.admit` verifies a presented bearer token locally
(`taskmesh_chassis.identity.TokenVerifier`: signature, claims, cached JWKS), then makes ONE
Redis call, a Lua script that checks the token's revocation (jti, session, the user's
not-before) and charges the request to the caller's rate limit, or, without a good token, to
the client IP's. The outcome is left on `scope["state"]["admission"]`, where `CurrentUser`
reads it; the route then needs no further Redis call to know its caller.

Redis down means nothing can be checked, so the answer is 503, never "accept".
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from taskmesh_chassis.errors import Unauthenticated
from taskmesh_chassis.identity import (
    REVOKED_MESSAGE,
    Caller,
    KeySetUnavailable,
    TokenVerifier,
    bearer_token,
    bind_caller,
)

from taskmesh_gateway.metrics import count_rate_limited
from taskmesh_gateway.problems import RETRY_AFTER_S, problem_response
from taskmesh_gateway.rate_limits import (
    ADMIT_ANONYMOUS_LUA,
    ADMIT_CALLER_LUA,
    Quota,
    RateLimitPolicy,
    ip_partition_key,
    user_partition_key,
)
from taskmesh_gateway.revocation import CHECK_REVOKED_LUA, revocation_keys

log = structlog.get_logger(__name__)

RATE_LIMITED_PREFIXES = ("/api/v1/", "/.well-known/")
"""Paths whose requests are admitted (and limited); health, metrics and docs are not."""

UNKNOWN_CLIENT = "unknown"
ADMISSION_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, KeySetUnavailable)
"""What makes admission impossible for now: the answer is 503, never "accept"."""
REVOCATION_BATCH = 1000
"""Tokens checked by one script call; bounds how long one call holds Redis."""


@dataclass(frozen=True, slots=True)
class Admission:
    """What admission found out about a request."""

    caller: Caller | None
    """The verified, unrevoked caller; None for an anonymous request or a rejected token."""
    rejection: str | None
    """Why a presented bearer token was not accepted (for the 401), else None."""
    quota: Quota


class Gate(Protocol):
    """Decides the admission of one request."""

    async def admit(self, authorization: str | None, client_ip: str) -> Admission:
        """Identify the caller and charge the request to its rate limit."""
        ...


class Gatekeeper:
    """Token verification, revocation check and rate limit, with one Redis call per request."""

    def __init__(
        self,
        verifier: TokenVerifier,
        redis: Redis,
        *,
        user_limit_per_min: int,
        anonymous_limit_per_min: int,
    ) -> None:
        self._verifier = verifier
        self.user_policy = RateLimitPolicy("user", user_limit_per_min)
        self.ip_policy = RateLimitPolicy("ip", anonymous_limit_per_min)
        self._admit_caller = redis.register_script(ADMIT_CALLER_LUA)
        self._admit_anonymous = redis.register_script(ADMIT_ANONYMOUS_LUA)
        self._redis = redis

    async def admit(self, authorization: str | None, client_ip: str) -> Admission:
        """Verify the bearer token, if any; check its revocation and charge the rate limit."""
        token = bearer_token(authorization) if authorization is not None else None
        caller: Caller | None = None
        rejection: str | None = None
        if token is not None:
            try:
                caller = await self._verifier.verify(token)
            except Unauthenticated as error:
                rejection = error.message
        if caller is None:
            return Admission(None, rejection, await self._charge_ip(client_ip))
        return await self._admit(caller, client_ip)

    async def _charge_ip(self, client_ip: str) -> Quota:
        window_ms = self.ip_policy.window_s * 1000
        _, allowed, used, wait_ms = await self._admit_anonymous(
            keys=[ip_partition_key(client_ip)],
            args=[self.ip_policy.limit, window_ms, _nonce()],
        )
        return Quota.from_window(self.ip_policy, bool(allowed), int(used), int(wait_ms))

    async def _admit(self, caller: Caller, client_ip: str) -> Admission:
        window_ms = self.user_policy.window_s * 1000
        revoked, allowed, used, wait_ms = await self._admit_caller(
            keys=[
                *revocation_keys(caller),
                user_partition_key(caller.user_id),
                ip_partition_key(client_ip),
            ],
            args=[
                repr(caller.issued_at),
                self.user_policy.limit,
                self.ip_policy.limit,
                window_ms,
                _nonce(),
            ],
        )
        if revoked:
            log.info("token.revoked", user_id=caller.user_id)
            quota = Quota.from_window(self.ip_policy, bool(allowed), int(used), int(wait_ms))
            return Admission(None, REVOKED_MESSAGE, quota)
        quota = Quota.from_window(self.user_policy, bool(allowed), int(used), int(wait_ms))
        return Admission(caller, None, quota)

    async def revoked(self, callers: Sequence[Caller]) -> set[str]:
        """The token ids (`jti`) among the callers' tokens that are revoked now.

        One Redis round trip whatever the number: the tokens go in batches of
        `REVOCATION_BATCH` through the same revocation rule as admission, in one pipeline.
        """
        if not callers:
            return set()
        batches = [
            callers[start : start + REVOCATION_BATCH]
            for start in range(0, len(callers), REVOCATION_BATCH)
        ]
        # EVAL, not a registered script: a pipeline of registered scripts first asks Redis
        # whether they are loaded (a second round trip); Redis caches EVAL'd scripts anyway.
        async with self._redis.pipeline(transaction=False) as pipeline:
            for batch in batches:
                keys = [key for caller in batch for key in revocation_keys(caller)]
                issued = [repr(caller.issued_at) for caller in batch]
                pipeline.eval(CHECK_REVOKED_LUA, len(keys), *keys, *issued)
            answers: list[list[int]] = await pipeline.execute()
        return {
            caller.token_id
            for batch, flags in zip(batches, answers, strict=True)
            for caller, flag in zip(batch, flags, strict=True)
            if flag
        }


def _nonce() -> str:
    # Makes each request's member of the sorted set unique, even within one millisecond.
    return os.urandom(6).hex()


class AdmissionMiddleware:
    """Admits every request on a rate-limited path; adds the RateLimit headers to its answer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefixes: tuple[str, ...] = RATE_LIMITED_PREFIXES,
        exempt: Collection[str] = (),
    ) -> None:
        self.app = app
        self._prefixes = prefixes
        self._exempt = frozenset(exempt)

    def is_rate_limited(self, path: str) -> bool:
        """Whether requests to `path` are admitted and limited."""
        return path.startswith(self._prefixes) and path not in self._exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Admit the request, then answer 429/503 or pass it on with the quota headers."""
        if scope["type"] != "http" or not self.is_rate_limited(scope["path"]):
            await self.app(scope, receive, send)
            return
        gate: Gate = scope["app"].state.gatekeeper
        client = scope.get("client")
        client_ip = client[0] if client else UNKNOWN_CLIENT
        try:
            admission = await gate.admit(_authorization(scope), client_ip)
        except ADMISSION_UNAVAILABLE as error:
            log.warning("admission.unavailable", error_type=type(error).__name__)
            unavailable = problem_response(scope, 503, headers={"Retry-After": str(RETRY_AFTER_S)})
            await unavailable(scope, receive, send)
            return
        scope.setdefault("state", {})["admission"] = admission
        if admission.caller is not None:
            bind_caller(admission.caller)
        quota_headers = admission.quota.headers()
        if not admission.quota.allowed:
            log.info("ratelimit.exceeded", policy=admission.quota.policy.name)
            count_rate_limited(admission.quota.policy.name)
            headers = {key.decode(): value.decode() for key, value in quota_headers}
            headers["Retry-After"] = str(admission.quota.retry_after_s)
            await problem_response(scope, 429, headers=headers)(scope, receive, send)
            return

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *quota_headers]
            await send(message)

        await self.app(scope, receive, send_with_quota)


def _authorization(scope: Scope) -> str | None:
    key: bytes
    value: bytes
    for key, value in scope["headers"]:
        if key == b"authorization":
            return value.decode("latin-1")
    return None
