"""The `GET /api/v1/tasks` cache: one entry per user and normalised query, for 5 minutes.

Each user has a generation counter, `taskmesh:tasks:gen:{user_id}`; an entry lives at
`taskmesh:tasks:list:{user_id}:{generation}:{query hash}`. A read takes the generation first,
then the entry of that generation; a miss is filled under the generation read *before* the
service was asked. Invalidating a user is one `INCR` (O(1), atomic, any number of entries):
later reads look under the new generation, and an answer computed before a write can only be
filled under the old one, which nobody reads any more — so a slow reader racing a write never
plants a stale page. Orphaned entries expire with their TTL.

Every task write increments the generation of each user it affected (the service names them in
the `x-affected-user-ids` trailing metadata) and of the caller, before its answer is sent. The
tasks service increments it too, for the users an account deletion's purge affected; the key
and its TTL are defined once for both in `taskmesh_chassis.cache_keys`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis
from taskmesh_chassis.cache_keys import TASK_LIST_GENERATION_TTL_S as GENERATION_TTL_S
from taskmesh_chassis.cache_keys import task_list_generation_key as generation_key

TASK_LIST_TTL_S: Final = 5 * 60


def entry_key(user_id: str, generation: bytes, query_key: str) -> str:
    """The Redis key of one cached page."""
    return f"taskmesh:tasks:list:{user_id}:{generation.decode()}:{query_key}"


@dataclass(frozen=True, slots=True)
class CachedList:
    """What a lookup found: the generation it looked under and the page, if cached."""

    generation: bytes
    body: bytes | None


class TaskListCache:
    """Reads, fills and invalidates the per-user task list cache."""

    def __init__(self, redis: Redis, *, ttl_s: int = TASK_LIST_TTL_S) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def lookup(self, user_id: str, query_key: str) -> CachedList:
        """The user's current generation and the page cached for the query under it."""
        generation = await self._redis.get(generation_key(user_id))
        generation = generation if isinstance(generation, bytes) else b"0"
        body = await self._redis.get(entry_key(user_id, generation, query_key))
        return CachedList(generation, body if isinstance(body, bytes) else None)

    async def fill(self, user_id: str, generation: bytes, query_key: str, body: bytes) -> None:
        """Cache a page computed after `generation` was read."""
        await self._redis.set(entry_key(user_id, generation, query_key), body, ex=self._ttl_s)

    async def invalidate(self, user_ids: Iterable[str]) -> None:
        """Make every cached page of these users unreachable, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipeline:
            for user_id in sorted(set(user_ids)):
                pipeline.incr(generation_key(user_id))
                pipeline.expire(generation_key(user_id), GENERATION_TTL_S)
            await pipeline.execute()
