"""Invalidating the gateway's task-list cache from the tasks service, against a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from bson import ObjectId
from redis.asyncio import Redis
from taskmesh_chassis.cache_keys import TASK_LIST_GENERATION_TTL_S, task_list_generation_key
from taskmesh_chassis.testing import capture_logs, find_free_port
from taskmesh_tasks.list_cache import RedisTaskListInvalidator

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_invalidation_bumps_each_users_generation_with_its_ttl(redis: Redis) -> None:
    users = [str(ObjectId()) for _ in range(2)]
    await redis.set(task_list_generation_key(users[0]), 7)

    invalidated = await RedisTaskListInvalidator(redis).invalidate(users)

    generations = [await redis.get(task_list_generation_key(user)) for user in users]
    assert invalidated
    assert generations == [b"8", b"1"]
    assert 0 < await redis.ttl(task_list_generation_key(users[1])) <= TASK_LIST_GENERATION_TTL_S
    await redis.delete(*(task_list_generation_key(user) for user in users))


async def test_redis_down_is_retried_then_logged_without_raising() -> None:
    logs = capture_logs("tasks")
    unreachable = Redis.from_url(f"redis://127.0.0.1:{find_free_port()}/0", socket_timeout=1)
    invalidator = RedisTaskListInvalidator(unreachable, attempts=3, first_retry_delay_s=0.01)
    user = str(ObjectId())

    invalidated = await invalidator.invalidate([user])

    await unreachable.aclose()
    (failure,) = logs.events("tasks.list_cache_invalidation_failed")
    assert not invalidated
    assert (failure["attempts"], failure["user_ids"]) == (3, [user])
