"""Rate-limit arithmetic and headers; the sliding-window script against a real Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from taskmesh_gateway.admission import AdmissionMiddleware
from taskmesh_gateway.clients import create_redis
from taskmesh_gateway.rate_limits import (
    ADMIT_ANONYMOUS_LUA,
    Quota,
    RateLimitPolicy,
    ip_partition_key,
    user_partition_key,
)
from taskmesh_gateway.settings import GatewaySettings

REDIS_URL = "redis://127.0.0.1:6379/14"

USER = RateLimitPolicy("user", 100)


def test_policy_header_follows_the_ietf_draft_syntax() -> None:
    assert USER.header == (b"ratelimit-policy", b'"user";q=100;w=60')


def test_quota_headers_name_the_policy_remaining_and_reset() -> None:
    quota = Quota.from_window(USER, allowed=True, used=63, wait_ms=41_200)

    assert quota.headers() == [
        (b"ratelimit-policy", b'"user";q=100;w=60'),
        (b"ratelimit", b'"user";r=37;t=42'),
    ]


def test_first_request_of_a_window_leaves_the_limit_less_one_for_the_whole_window() -> None:
    quota = Quota.from_window(USER, allowed=True, used=1, wait_ms=60_000)

    assert (quota.remaining, quota.reset_s) == (99, 60)


def test_refused_request_has_nothing_remaining_and_a_retry_after() -> None:
    quota = Quota.from_window(USER, allowed=False, used=100, wait_ms=12_001)

    assert (quota.allowed, quota.remaining, quota.reset_s, quota.retry_after_s) == (
        False,
        0,
        13,
        13,
    )


def test_refusal_never_says_retry_after_zero() -> None:
    quota = Quota.from_window(USER, allowed=False, used=100, wait_ms=0)

    assert quota.retry_after_s == 1


def test_remaining_is_never_negative_after_the_limit_was_lowered() -> None:
    quota = Quota.from_window(RateLimitPolicy("user", 10), allowed=False, used=40, wait_ms=500)

    assert quota.remaining == 0


def test_partition_keys() -> None:
    assert user_partition_key("u1") == "taskmesh:rl:user:u1"
    assert ip_partition_key("203.0.113.9") == "taskmesh:rl:ip:203.0.113.9"


@pytest.mark.parametrize(
    ("path", "limited"),
    [
        ("/api/v1/tasks", True),
        ("/api/v1/auth/login", True),
        ("/api/v1/no-such-thing", True),
        ("/.well-known/jwks.json", True),
        ("/api/v1/openapi.json", False),
        ("/healthz", False),
        ("/readyz", False),
        ("/metrics", False),
        ("/docs", False),
        ("/docs/assets/swagger-ui.css", False),
    ],
)
def test_which_paths_are_limited(path: str, limited: bool) -> None:
    middleware = AdmissionMiddleware(app=lambda *_: None, exempt={"/api/v1/openapi.json"})  # type: ignore[arg-type,return-value]

    assert middleware.is_rate_limited(path) is limited


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = create_redis(GatewaySettings(redis_url=REDIS_URL))
    yield client
    await client.aclose()


async def charge(redis: Redis, key: str, limit: int, window_ms: int) -> tuple[int, int, int]:
    script = redis.register_script(ADMIT_ANONYMOUS_LUA)
    _, allowed, used, wait_ms = await script(
        keys=[key], args=[limit, window_ms, secrets.token_hex(6)]
    )
    return int(allowed), int(used), int(wait_ms)


@pytest.mark.integration
async def test_sliding_window_admits_exactly_the_limit_then_refuses(redis: Redis) -> None:
    key = f"test:rl:{secrets.token_hex(8)}"

    results = [await charge(redis, key, 3, 60_000) for _ in range(5)]

    assert [allowed for allowed, _, _ in results] == [1, 1, 1, 0, 0]
    assert [used for _, used, _ in results] == [1, 2, 3, 3, 3]
    assert all(55_000 < wait_ms <= 60_000 for _, _, wait_ms in results)


@pytest.mark.integration
async def test_sliding_window_admits_again_once_the_oldest_request_left_it(redis: Redis) -> None:
    key = f"test:rl:{secrets.token_hex(8)}"
    for _ in range(2):
        await charge(redis, key, 2, 500)
    refused = await charge(redis, key, 2, 500)

    await asyncio.sleep(0.55)

    assert refused[0] == 0
    assert (await charge(redis, key, 2, 500))[0] == 1


@pytest.mark.integration
async def test_sliding_window_is_exact_under_concurrency(redis: Redis) -> None:
    key = f"test:rl:{secrets.token_hex(8)}"

    results = await asyncio.gather(*(charge(redis, key, 100, 60_000) for _ in range(130)))

    assert sum(allowed for allowed, _, _ in results) == 100
    assert await redis.zcard(key) == 100


@pytest.mark.integration
async def test_partition_expires_with_its_window(redis: Redis) -> None:
    key = f"test:rl:{secrets.token_hex(8)}"

    await charge(redis, key, 5, 60_000)

    assert 59_000 < await redis.pttl(key) <= 60_000
