"""The login brute-force guard against a real Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from taskmesh_gateway.clients import create_redis
from taskmesh_gateway.login_guard import LoginAttempt, LoginGuard, LoginLocked, attempts_key
from taskmesh_gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = create_redis(GatewaySettings(redis_url=REDIS_URL))
    yield client
    await client.aclose()


@pytest.fixture
def email() -> str:
    return f"ada-{secrets.token_hex(6)}@example.com"


@pytest.fixture
def guard(redis: Redis) -> LoginGuard:
    return LoginGuard(redis, max_failures=5, window_s=900)


async def fail(guard: LoginGuard, email: str, times: int) -> list[LoginAttempt]:
    return [await guard.begin(email) for _ in range(times)]


async def test_four_failures_leave_the_email_open(guard: LoginGuard, email: str) -> None:
    await fail(guard, email, 4)

    assert isinstance(await guard.begin(email), LoginAttempt)


async def test_five_failures_lock_the_email_for_the_rest_of_the_window(
    guard: LoginGuard, email: str
) -> None:
    await fail(guard, email, 5)

    with pytest.raises(LoginLocked) as locked:
        await guard.begin(email)

    assert 895 <= locked.value.retry_after_s <= 900


async def test_each_refused_attempt_is_counted_as_rate_limited(
    guard: LoginGuard, email: str
) -> None:
    before = REGISTRY.get_sample_value("taskmesh_rate_limited_total", {"policy": "login"}) or 0
    await fail(guard, email, 5)

    for _ in range(2):
        with pytest.raises(LoginLocked):
            await guard.begin(email)

    after = REGISTRY.get_sample_value("taskmesh_rate_limited_total", {"policy": "login"})
    assert after == before + 2


async def test_discounted_attempts_do_not_count(guard: LoginGuard, email: str) -> None:
    for attempt in await fail(guard, email, 5):
        await guard.discount(attempt)

    assert isinstance(await guard.begin(email), LoginAttempt)


async def test_a_burst_of_concurrent_attempts_gets_only_the_allowed_number_through(
    guard: LoginGuard, email: str
) -> None:
    outcomes = await asyncio.gather(
        *(guard.begin(email) for _ in range(50)), return_exceptions=True
    )

    assert sum(isinstance(outcome, LoginAttempt) for outcome in outcomes) == 5
    assert sum(isinstance(outcome, LoginLocked) for outcome in outcomes) == 45


async def test_failures_count_for_the_email_whatever_its_case_and_spaces(
    guard: LoginGuard, email: str
) -> None:
    await fail(guard, email.upper(), 3)
    await fail(guard, f"  {email} ", 2)

    with pytest.raises(LoginLocked):
        await guard.begin(email)


async def test_other_emails_are_not_affected(guard: LoginGuard, email: str) -> None:
    await fail(guard, email, 5)

    assert isinstance(await guard.begin(f"other-{email}"), LoginAttempt)


async def test_lock_ends_when_the_oldest_failure_leaves_the_window(
    redis: Redis, email: str
) -> None:
    guard = LoginGuard(redis, max_failures=2, window_s=1)
    await fail(guard, email, 2)
    with pytest.raises(LoginLocked) as locked:
        await guard.begin(email)
    assert locked.value.retry_after_s == 1

    await asyncio.sleep(1.05)

    assert isinstance(await guard.begin(email), LoginAttempt)


async def test_the_key_names_a_hash_not_the_email(
    guard: LoginGuard, redis: Redis, email: str
) -> None:
    await fail(guard, email, 1)

    key = attempts_key(email)
    assert email not in key
    assert key.startswith("taskmesh:login:failures:")
    assert await redis.zcard(key) == 1
    assert 899_000 < await redis.pttl(key) <= 900_000


async def test_discount_with_redis_down_keeps_quiet(email: str) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    guard = LoginGuard(dead, max_failures=5, window_s=900)

    await guard.discount(LoginAttempt(attempts_key(email), "m"))

    await dead.aclose()
