from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from taskmesh_chassis.mongo import create_mongo_client, ensure_indexes, ping

pytestmark = pytest.mark.integration

PLAN = {
    "tasks": [IndexModel([("owner_id", ASCENDING), ("created_at", DESCENDING)])],
    "users": [IndexModel([("email", ASCENDING)], unique=True)],
}


@pytest.fixture
async def client(secantus_url: str) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client = create_mongo_client(secantus_url, appname="taskmesh-chassis-tests")
    yield client
    await client.close()


@pytest.fixture
def database(client: AsyncMongoClient[dict[str, Any]]) -> AsyncDatabase[dict[str, Any]]:
    return client[f"test_{uuid.uuid4().hex[:12]}"]


async def _index_keys(database: AsyncDatabase[dict[str, Any]], collection: str) -> list[Any]:
    info = await database[collection].index_information()
    return sorted((list(index["key"]), bool(index.get("unique"))) for index in info.values())


async def test_ensure_indexes_creates_the_planned_indexes(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    await ensure_indexes(database, PLAN)
    assert ([("owner_id", 1), ("created_at", -1)], False) in await _index_keys(database, "tasks")
    assert ([("email", 1)], True) in await _index_keys(database, "users")


async def test_ensure_indexes_twice_changes_nothing(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    await ensure_indexes(database, PLAN)
    before = await _index_keys(database, "tasks")
    await ensure_indexes(database, PLAN)
    assert await _index_keys(database, "tasks") == before


async def test_unique_index_is_enforced(database: AsyncDatabase[dict[str, Any]]) -> None:
    await ensure_indexes(database, PLAN)
    await database.users.insert_one({"email": "a@example.com"})
    with pytest.raises(DuplicateKeyError):
        await database.users.insert_one({"email": "a@example.com"})


async def test_client_reads_timezone_aware_datetimes(
    database: AsyncDatabase[dict[str, Any]],
) -> None:
    await database.things.insert_one({"_id": 1, "at": datetime(2026, 11, 28, 9, 42, tzinfo=UTC)})
    document = await database.things.find_one({"_id": 1})
    assert document is not None
    assert document["at"].tzinfo is not None


async def test_ping_answers_true_when_the_server_is_up(
    client: AsyncMongoClient[dict[str, Any]],
) -> None:
    assert await ping(client)


async def test_ping_answers_false_when_nothing_listens(free_port: int) -> None:
    client = create_mongo_client(
        f"mongodb://127.0.0.1:{free_port}/", appname="test", server_selection_timeout_s=0.2
    )
    try:
        assert not await ping(client)
    finally:
        await client.close()


def test_is_object_id_takes_24_hex_digits_only() -> None:
    from taskmesh_chassis.mongo import is_object_id

    assert is_object_id("65f0c0ffee00000000000001")
    assert not is_object_id("65f0c0ffee0000000000000")  # 23
    assert not is_object_id("65f0c0ffee00000000000001x")
    assert not is_object_id("twelve bytes")  # a 12-byte string is an ObjectId to bson
    assert not is_object_id("zzzzzzzzzzzzzzzzzzzzzzzz")
