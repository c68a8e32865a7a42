"""Fixtures of the auth service's integration tests: real SecantusDB, Redis and RabbitMQ.

Redis: database 13, kept for these tests; each test deletes the revocation keys of the
users and sessions it created (jti keys expire with the tests' one-minute access tokens).
RabbitMQ: each test relays to an exchange of its own, deleted afterwards, so no test event
reaches the queues of a suite running on the same broker.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from taskmesh_auth.settings import AuthSettings
from taskmesh_auth.tokens import private_key_pem
from taskmesh_chassis.identity import (
    me_cache_key,
    not_before_key,
    revoked_session_key,
)
from taskmesh_chassis.testing import find_free_port

TEST_REDIS_URL = "redis://127.0.0.1:6379/13"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def exchange() -> AsyncIterator[str]:
    name = f"test.auth.{uuid.uuid4().hex[:10]}"
    yield name
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(name)


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
async def auth_settings(
    secantus_url: str,
    free_port: int,
    exchange: str,
    signing_key: Ed25519PrivateKey,
    redis: Redis,
) -> AsyncIterator[AuthSettings]:
    settings = AuthSettings(
        grpc_port=free_port,
        metrics_port=0,
        mongodb_url=secantus_url,
        mongodb_database_prefix=f"test_{uuid.uuid4().hex[:12]}_",
        redis_url=TEST_REDIS_URL,
        amqp_url=AMQP_URL,
        events_exchange=exchange,
        jwt_signing_key=private_key_pem(signing_key).decode(),
        access_token_ttl_s=60,
        shutdown_grace_s=1.0,
        # Nothing listens there: register logs the failed profile call and succeeds.
        users_grpc_target=f"127.0.0.1:{find_free_port()}",
    )
    yield settings
    await forget_revocation_keys(settings, redis)


async def forget_revocation_keys(settings: AuthSettings, redis: Redis) -> None:
    """Delete the Redis keys of every user and session in the test's database."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value()
    )
    try:
        database = client[settings.mongodb_database]
        user_ids = [str(doc["_id"]) async for doc in database.users.find({}, {"_id": 1})]
        session_ids = [doc["_id"] async for doc in database.sessions.find({}, {"_id": 1})]
    finally:
        await client.close()
    keys = [
        *(not_before_key(user_id) for user_id in user_ids),
        *(me_cache_key(user_id) for user_id in user_ids),
        *(revoked_session_key(session_id) for session_id in session_ids),
    ]
    if keys:
        await redis.delete(*keys)
