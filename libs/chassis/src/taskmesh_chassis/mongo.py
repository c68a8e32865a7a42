"""MongoDB access: one async client per process, indexes ensured at start-up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from bson import ObjectId
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

log = structlog.get_logger(__name__)

Document = dict[str, Any]
# Collection name -> the indexes it must have.
IndexPlan = Mapping[str, Sequence[IndexModel]]


def create_mongo_client(
    url: str,
    *,
    appname: str,
    server_selection_timeout_s: float = 5.0,
    connect_timeout_s: float = 5.0,
    socket_timeout_s: float = 10.0,
) -> AsyncMongoClient[Document]:
    """Create the process's MongoDB client; it connects lazily, on first use.

    Every wait is bounded so that a missing or stuck server becomes an error the caller can
    report (UNAVAILABLE) instead of a call that hangs. (Not `timeoutMS`: it would replace
    the short server-selection timeout; a handler that wants its RPC deadline applied wraps
    its queries in `pymongo.timeout(context.time_remaining())`.)
    """
    return AsyncMongoClient(
        url,
        appname=appname,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=int(server_selection_timeout_s * 1000),
        connectTimeoutMS=int(connect_timeout_s * 1000),
        socketTimeoutMS=int(socket_timeout_s * 1000),
    )


async def ensure_indexes(database: AsyncDatabase[Document], plan: IndexPlan) -> None:
    """Create the planned indexes; those that already exist with the same definition are kept.

    An index whose name exists with a different definition fails start-up loudly rather
    than being silently replaced.
    """
    for collection, indexes in plan.items():
        if indexes:
            names = await database[collection].create_indexes(list(indexes))
            log.info("mongo.indexes_ensured", collection=collection, indexes=names)


async def ping(client: AsyncMongoClient[Document]) -> bool:
    """Tell whether the MongoDB server answers (for readiness checks)."""
    try:
        await client.admin.command("ping")
    except PyMongoError:
        return False
    return True


def is_object_id(value: str) -> bool:
    """Whether `value` is a 24-hex-digit id (and only that: no other ObjectId input form)."""
    return len(value) == 24 and ObjectId.is_valid(value)
