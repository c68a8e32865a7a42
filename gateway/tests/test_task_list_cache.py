"""The per-user task list cache against a real Redis: hits, invalidation, the stale-fill race."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from taskmesh_gateway.clients import create_redis
from taskmesh_gateway.settings import GatewaySettings
from taskmesh_gateway.task_list_cache import TaskListCache, entry_key, generation_key

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/14"
PAGE = b'{"items":[],"next_cursor":null}'


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = create_redis(GatewaySettings(redis_url=REDIS_URL))
    yield client
    await client.aclose()


@pytest.fixture
async def users(redis: Redis) -> AsyncIterator[list[str]]:
    users = [uuid.uuid4().hex[:24] for _ in range(2)]
    yield users
    for user_id in users:
        keys = [key async for key in redis.scan_iter(match=f"taskmesh:tasks:*{user_id}*")]
        if keys:
            await redis.delete(*keys)


@pytest.fixture
def cache(redis: Redis) -> TaskListCache:
    return TaskListCache(redis)


async def test_a_filled_page_is_found_under_the_same_generation(
    cache: TaskListCache, users: list[str]
) -> None:
    miss = await cache.lookup(users[0], "q1")
    await cache.fill(users[0], miss.generation, "q1", PAGE)

    hit = await cache.lookup(users[0], "q1")

    assert (miss.body, hit.body) == (None, PAGE)


async def test_pages_live_five_minutes(
    cache: TaskListCache, users: list[str], redis: Redis
) -> None:
    miss = await cache.lookup(users[0], "q1")
    await cache.fill(users[0], miss.generation, "q1", PAGE)

    assert 295 < await redis.ttl(entry_key(users[0], miss.generation, "q1")) <= 300


async def test_invalidation_hides_every_page_of_each_user_named(
    cache: TaskListCache, users: list[str]
) -> None:
    for user_id in users:
        for query in ("q1", "q2"):
            lookup = await cache.lookup(user_id, query)
            await cache.fill(user_id, lookup.generation, query, PAGE)

    await cache.invalidate(users)

    for user_id in users:
        for query in ("q1", "q2"):
            assert (await cache.lookup(user_id, query)).body is None


async def test_invalidation_leaves_other_users_alone(
    cache: TaskListCache, users: list[str]
) -> None:
    lookup = await cache.lookup(users[1], "q1")
    await cache.fill(users[1], lookup.generation, "q1", PAGE)

    await cache.invalidate([users[0]])

    assert (await cache.lookup(users[1], "q1")).body == PAGE


async def test_a_page_read_before_a_write_is_never_served_after_it(
    cache: TaskListCache, users: list[str]
) -> None:
    # A slow reader: looks up, asks the service (old data), and fills only after a write
    # has invalidated in between.
    before_write = await cache.lookup(users[0], "q1")
    await cache.invalidate([users[0]])
    await cache.fill(users[0], before_write.generation, "q1", b"stale")

    assert (await cache.lookup(users[0], "q1")).body is None


async def test_the_generation_counter_expires_eventually(
    cache: TaskListCache, users: list[str], redis: Redis
) -> None:
    await cache.invalidate([users[0]])

    assert await redis.ttl(generation_key(users[0])) > 3600
