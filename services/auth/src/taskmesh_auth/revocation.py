"""Revocation of live access tokens, in Redis, where every gateway checks each request.

The keys are a contract with the gateway (taskmesh_chassis.identity names them; docs/auth.md):

    taskmesh:revoked:jti:{jti}            "1" until the token's exp          (logout)
    taskmesh:revoked:sid:{sid}            "1" for ACCESS_TOKEN_TTL_S + 60 s  (a session ended)
    taskmesh:user:{user_id}:not_before    epoch seconds (float) as a string, same expiry;
                                          tokens with iat < it are revoked
    taskmesh:me:{user_id}                 the gateway's /auth/me cache, deleted on any change

Each use case writes here before it changes the database: a failure in between revokes too
much (the client signs in again), never too little. A Redis failure is DependencyUnavailable.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Final, Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from taskmesh_chassis.identity import (
    me_cache_key,
    not_before_key,
    revoked_session_key,
    revoked_token_key,
)

from taskmesh_auth.domain import DependencyUnavailable

log = structlog.get_logger(__name__)

# A "not before" only ever moves forward, even when two changes race.
_RAISE_NOT_BEFORE: Final = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class RevocationStore(Protocol):
    """Where the gateway learns that access tokens stopped being valid before their exp."""

    async def revoke_token(self, token_id: str, expires_at: float) -> None:
        """Revoke one access token until it expires anyway."""
        ...

    async def revoke_sessions(self, session_ids: Iterable[str]) -> None:
        """Revoke every access token of these sessions."""
        ...

    async def revoke_user_tokens_before(self, user_id: str, moment: float) -> None:
        """Revoke every access token of the user issued before `moment` (epoch seconds)."""
        ...

    async def forget_cached_me(self, user_id: str) -> None:
        """Drop the gateway's cached /auth/me answer for the user."""
        ...


class RedisRevocationStore:
    """The revocation keys in Redis; each entry outlives the tokens it revokes by 60 s."""

    def __init__(self, redis: Redis, *, access_token_ttl_s: int) -> None:
        self._redis = redis
        self._window_s = access_token_ttl_s + 60
        self._raise_not_before = redis.register_script(_RAISE_NOT_BEFORE)

    async def revoke_token(self, token_id: str, expires_at: float) -> None:
        """Set `taskmesh:revoked:jti:{jti}` until the token's exp."""
        async with _unavailable_on_error("revoke_token"):
            await self._redis.set(
                revoked_token_key(token_id), "1", exat=max(1, math.ceil(expires_at))
            )

    async def revoke_sessions(self, session_ids: Iterable[str]) -> None:
        """Set `taskmesh:revoked:sid:{sid}` for each session, in one round trip."""
        keys = [revoked_session_key(session_id) for session_id in session_ids]
        if not keys:
            return
        async with (
            _unavailable_on_error("revoke_sessions"),
            self._redis.pipeline(transaction=False) as pipe,
        ):
            for key in keys:
                pipe.set(key, "1", ex=self._window_s)
            await pipe.execute()

    async def revoke_user_tokens_before(self, user_id: str, moment: float) -> None:
        """Raise `taskmesh:user:{id}:not_before` to `moment` (never lower it)."""
        async with _unavailable_on_error("revoke_user_tokens_before"):
            await self._raise_not_before(
                keys=[not_before_key(user_id)], args=[f"{moment:.6f}", self._window_s]
            )

    async def forget_cached_me(self, user_id: str) -> None:
        """Delete `taskmesh:me:{user_id}`."""
        async with _unavailable_on_error("forget_cached_me"):
            await self._redis.delete(me_cache_key(user_id))


@asynccontextmanager
async def _unavailable_on_error(operation: str) -> AsyncIterator[None]:
    try:
        yield
    except RedisError as error:
        log.warning("revocation.redis_failed", operation=operation, error_type=type(error).__name__)
        raise DependencyUnavailable("the revocation store is unavailable") from error
