"""The revocation keys in Redis: exactly the names, values and lifetimes the gateway reads."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from taskmesh_auth.domain import DependencyUnavailable
from taskmesh_auth.revocation import RedisRevocationStore
from taskmesh_chassis.testing import find_free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def keys_written(redis: Redis) -> AsyncIterator[list[str]]:
    written: list[str] = []
    yield written
    if written:
        await redis.delete(*written)


@pytest.fixture
def store(redis: Redis) -> RedisRevocationStore:
    return RedisRevocationStore(redis, access_token_ttl_s=900)


async def test_revoked_token_is_remembered_until_it_expires(
    store: RedisRevocationStore, redis: Redis, keys_written: list[str]
) -> None:
    jti = uuid.uuid4().hex
    keys_written.append(f"taskmesh:revoked:jti:{jti}")

    await store.revoke_token(jti, time.time() + 600)

    assert await redis.get(f"taskmesh:revoked:jti:{jti}") == "1"
    assert 598 <= await redis.ttl(f"taskmesh:revoked:jti:{jti}") <= 601


async def test_revoked_sessions_are_remembered_for_a_token_lifetime_and_a_minute(
    store: RedisRevocationStore, redis: Redis, keys_written: list[str]
) -> None:
    sids = [uuid.uuid4().hex, uuid.uuid4().hex]
    keys_written.extend(f"taskmesh:revoked:sid:{sid}" for sid in sids)

    await store.revoke_sessions(sids)

    for sid in sids:
        assert await redis.get(f"taskmesh:revoked:sid:{sid}") == "1"
        assert 950 <= await redis.ttl(f"taskmesh:revoked:sid:{sid}") <= 960


async def test_not_before_is_epoch_seconds_and_never_moves_back(
    store: RedisRevocationStore, redis: Redis, keys_written: list[str]
) -> None:
    user_id = uuid.uuid4().hex[:24]
    key = f"taskmesh:user:{user_id}:not_before"
    keys_written.append(key)

    await store.revoke_user_tokens_before(user_id, 1_800_000_000.25)
    await store.revoke_user_tokens_before(user_id, 1_700_000_000.5)

    assert await redis.get(key) == "1800000000.250000"
    assert 950 <= await redis.ttl(key) <= 960


async def test_forgetting_me_deletes_the_gateways_cache(
    store: RedisRevocationStore, redis: Redis, keys_written: list[str]
) -> None:
    user_id = uuid.uuid4().hex[:24]
    keys_written.append(f"taskmesh:me:{user_id}")
    await redis.hset(f"taskmesh:me:{user_id}", "some-jti", "{}")

    await store.forget_cached_me(user_id)

    assert await redis.exists(f"taskmesh:me:{user_id}") == 0


async def test_unreachable_redis_is_dependency_unavailable() -> None:
    unreachable = Redis.from_url(
        f"redis://127.0.0.1:{find_free_port()}/0", socket_connect_timeout=0.5
    )
    store = RedisRevocationStore(unreachable, access_token_ttl_s=900)
    try:
        with pytest.raises(DependencyUnavailable):
            await store.revoke_token("jti", time.time() + 60)
    finally:
        await unreachable.aclose()
