"""The gateway's per-user task-list cache, invalidated from here for writes no request made.

A write through the gateway invalidates the lists of the users it affected itself
(`taskmesh_gateway.task_list_cache`). An account deletion's purge changes other users' tasks
with no request in flight, so the tasks service bumps their cache generations: one `INCR` per
user of the key the gateway reads (`taskmesh_chassis.cache_keys`), with the same TTL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Final, Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from taskmesh_chassis.cache_keys import TASK_LIST_GENERATION_TTL_S, task_list_generation_key

log = structlog.get_logger(__name__)

INVALIDATION_ATTEMPTS: Final = 3
FIRST_RETRY_DELAY_S: Final = 0.2


class TaskListInvalidator(Protocol):
    """Makes users' cached task lists unreachable."""

    async def invalidate(self, user_ids: Collection[str]) -> bool:
        """Invalidate every cached list of these users; tell whether that succeeded."""
        ...


class RedisTaskListInvalidator:
    """Bumps the gateway's cache generation of each user, retried with backoff.

    The change it follows is already committed: when Redis stays unavailable the failure is
    logged and the users' cached lists may stay stale until their TTL (5 minutes).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        attempts: int = INVALIDATION_ATTEMPTS,
        first_retry_delay_s: float = FIRST_RETRY_DELAY_S,
    ) -> None:
        if attempts < 1:
            raise ValueError("at least one attempt")
        self._redis = redis
        self._attempts = attempts
        self._first_retry_delay_s = first_retry_delay_s

    async def invalidate(self, user_ids: Collection[str]) -> bool:
        """One pipeline of `INCR` + `EXPIRE` per user, tried up to `attempts` times."""
        if not user_ids:
            return True
        attempt, delay = 1, self._first_retry_delay_s
        while True:
            try:
                await self._bump(user_ids)
                return True
            except RedisError as error:
                if attempt >= self._attempts:
                    log.warning(
                        "tasks.list_cache_invalidation_failed",
                        user_ids=sorted(user_ids),
                        attempts=attempt,
                        error_type=type(error).__name__,
                    )
                    return False
            await asyncio.sleep(delay)
            attempt, delay = attempt + 1, delay * 2

    async def _bump(self, user_ids: Collection[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipeline:
            for user_id in sorted(user_ids):
                key = task_list_generation_key(user_id)
                pipeline.incr(key)
                pipeline.expire(key, TASK_LIST_GENERATION_TTL_S)
            await pipeline.execute()
