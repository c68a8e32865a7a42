"""The `GET /api/v1/auth/me` cache: one Redis hash per user, one field per access token.

`taskmesh:me:{user_id}` maps each token's `jti` to the JSON User it was answered with, for
15 minutes from the last write. The auth service deletes the whole hash on any change to the
user, and the gateway does too on logout and password change before answering, so a client
never reads its own stale identity. A revoked token never reaches the cache: admission
refuses it first.
"""

from __future__ import annotations

from typing import Final

from redis.asyncio import Redis
from taskmesh_chassis.identity import Caller, me_cache_key

ME_CACHE_TTL_S: Final = 15 * 60


class MeCache:
    """Reads, fills and drops the cached `/auth/me` answers."""

    def __init__(self, redis: Redis, *, ttl_s: int = ME_CACHE_TTL_S) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def get(self, caller: Caller) -> bytes | None:
        """The cached answer for the caller's token, if any."""
        cached = await self._redis.hget(me_cache_key(caller.user_id), caller.token_id)
        return cached.encode() if isinstance(cached, str) else cached

    async def put(self, caller: Caller, body: bytes) -> None:
        """Cache the answer for the caller's token (and keep the user's hash 15 more minutes)."""
        key = me_cache_key(caller.user_id)
        async with self._redis.pipeline(transaction=False) as pipeline:
            pipeline.hset(key, caller.token_id, body)
            pipeline.expire(key, self._ttl_s)
            await pipeline.execute()

    async def drop(self, user_id: str) -> None:
        """Forget every cached answer for the user."""
        await self._redis.delete(me_cache_key(user_id))
