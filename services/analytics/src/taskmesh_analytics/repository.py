"""The rollups in MongoDB: written by the consumer, one `$inc` per bucket; read by the RPCs.

Collections (docs/analytics.md):

- `route_rollups` — per (grain, bucket start, route template, method): `count`, `errors`
  (5xx) and `latency` (histogram bucket index -> count, sparse). Grains minute and hour.
- `activity_rollups` — per (grain, bucket start): the suite-wide counts of `Activity`
  (requests, errors, tasks created/completed/deleted, users registered/deleted). Grains
  minute, hour and day, plus one document of grain `all` that counts since the beginning
  (the totals are differences of its counts).
- `last_seen` — per signed-in user: `{_id: user id, last_seen}`, the latest request.
- `deleted_users` — `{_id: user id, deleted_at}` for a while after a `user.deleted`, so that
  request records still in flight do not bring the user's `last_seen` back.

Every bucket document carries `expires_at` (its end plus its grain's retention) under a TTL
index, so each grain keeps its own history length and a new retention needs no index change.
Each collection's key is a unique index; every read is a range on it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from taskmesh_chassis.mongo import Document, IndexPlan

from taskmesh_analytics.domain import (
    ACTIVITY_GRAINS,
    EARLIEST,
    ROUTE_GRAINS,
    Activity,
    BucketRange,
    Grain,
)
from taskmesh_analytics.records import RequestTally, RouteTally

ROUTE_ROLLUPS: Final = "route_rollups"
ACTIVITY_ROLLUPS: Final = "activity_rollups"
LAST_SEEN: Final = "last_seen"
DELETED_USERS: Final = "deleted_users"

ALL_TIME: Final = "all"
"""The grain of the one activity document that counts since the beginning (start EARLIEST)."""

LAST_SEEN_TTL: Final = timedelta(hours=48)
"""A user's last request is kept this long: twice the active window, so that a count never
misses a user whose document the TTL monitor (which runs every minute) is about to delete."""
LAST_SEEN_RESOLUTION: Final = timedelta(minutes=1)
"""A stored last_seen is moved forward only once the user's new request is this much later:
an active user costs a write a minute, not one per batch."""
TOMBSTONE_TTL: Final = LAST_SEEN_TTL + timedelta(hours=1)
"""Longer than any record still accepted for `last_seen` can be old (see `RollupWriter`)."""

INDEXES: Final[IndexPlan] = {
    ROUTE_ROLLUPS: [
        IndexModel(
            [
                ("grain", ASCENDING),
                ("start", ASCENDING),
                ("route", ASCENDING),
                ("method", ASCENDING),
            ],
            name="grain_start_route_method",
            unique=True,
        ),
        IndexModel([("expires_at", ASCENDING)], name="expires_at_ttl", expireAfterSeconds=0),
    ],
    ACTIVITY_ROLLUPS: [
        IndexModel([("grain", ASCENDING), ("start", ASCENDING)], name="grain_start", unique=True),
        IndexModel([("expires_at", ASCENDING)], name="expires_at_ttl", expireAfterSeconds=0),
    ],
    LAST_SEEN: [
        # Serves the active-user count too: a range on last_seen.
        IndexModel(
            [("last_seen", ASCENDING)],
            name="last_seen_ttl",
            expireAfterSeconds=int(LAST_SEEN_TTL.total_seconds()),
        ),
    ],
    DELETED_USERS: [
        IndexModel(
            [("deleted_at", ASCENDING)],
            name="deleted_at_ttl",
            expireAfterSeconds=int(TOMBSTONE_TTL.total_seconds()),
        ),
    ],
}

IN_CHUNK: Final = 100
"""Ids per `$in` read: SecantusDB's cost per id grows with the list's length."""

_ACTIVITY_FIELDS: Final = {activity.value: 1 for activity in Activity}


@dataclass(frozen=True, slots=True)
class Retention:
    """How long the buckets of each grain are kept after they end."""

    minute: timedelta
    hour: timedelta
    day: timedelta

    def of(self, grain: Grain) -> timedelta:
        """The retention of a grain."""
        return {Grain.MINUTE: self.minute, Grain.HOUR: self.hour, Grain.DAY: self.day}[grain]

    def expiry(self, grain: Grain, start: datetime) -> datetime:
        """When the bucket of `grain` starting at `start` is deleted."""
        return start + grain.length + self.of(grain)


def _range_filter(bucket_range: BucketRange) -> Document:
    return {
        "grain": bucket_range.grain.value,
        "start": {"$gte": bucket_range.first, "$lt": bucket_range.stop},
    }


def _route_increments(tally: RouteTally) -> Document:
    increments: Document = {"count": tally.count}
    if tally.errors:
        increments["errors"] = tally.errors
    for index, count in tally.latency.counts.items():
        increments[f"latency.{index}"] = count
    return increments


def _activity_increments(counts: Mapping[Activity, int]) -> Document:
    return {activity.value: count for activity, count in counts.items() if count}


def _tally_of(document: Document) -> RouteTally:
    tally = RouteTally(count=document.get("count", 0), errors=document.get("errors", 0))
    tally.latency.merge({int(index): count for index, count in document["latency"].items()})
    return tally


# --- the consumer's writes ------------------------------------------------------------------


class RollupWriter:
    """What the consumer's handlers store, always through the consumer's transaction."""

    def __init__(self, database: AsyncDatabase[Document], retention: Retention) -> None:
        self._routes: AsyncCollection[Document] = database[ROUTE_ROLLUPS]
        self._activity: AsyncCollection[Document] = database[ACTIVITY_ROLLUPS]
        self._last_seen: AsyncCollection[Document] = database[LAST_SEEN]
        self._deleted: AsyncCollection[Document] = database[DELETED_USERS]
        self._retention = retention

    async def add_requests(
        self, tally: RequestTally, now: datetime, session: AsyncClientSession
    ) -> None:
        """Add a batch's tally: one upsert per route bucket and per activity bucket touched.

        A user's `last_seen` moves forward only (`$max`), by LAST_SEEN_RESOLUTION at least,
        never past `now` (a gateway clock ahead of ours), and only from records younger than
        LAST_SEEN_TTL: older ones could not make anyone active, and the tombstones that stop a
        deleted user from coming back last longer than that.
        """
        route_buckets: dict[tuple[Grain, datetime, str, str], RouteTally] = {}
        for (minute, route, method), route_tally in tally.routes.items():
            for grain in ROUTE_GRAINS:
                key = (grain, grain.floor(minute), route, method)
                route_buckets.setdefault(key, RouteTally()).merge(route_tally)
        route_updates = [
            UpdateOne(
                {"grain": grain.value, "start": start, "route": route, "method": method},
                {
                    "$inc": _route_increments(bucket),
                    "$setOnInsert": {"expires_at": self._retention.expiry(grain, start)},
                },
                upsert=True,
            )
            for (grain, start, route, method), bucket in route_buckets.items()
        ]
        if route_updates:
            await self._routes.bulk_write(route_updates, session=session)
        await self._add_activity(tally.activity, session)
        await self._see_users(tally.last_seen, now, session)

    async def count(self, activity: Activity, at: datetime, session: AsyncClientSession) -> None:
        """Count one occurrence of `activity` at `at` in its buckets and over all time."""
        await self._add_activity({Grain.MINUTE.floor(at): Counter({activity: 1})}, session)

    async def forget_user(self, user_id: str, now: datetime, session: AsyncClientSession) -> None:
        """Delete what is kept about one user and keep a tombstone for TOMBSTONE_TTL.

        The `last_seen` key is written even when there is none, so that a batch stored
        concurrently by another instance (which saw no tombstone) conflicts with this
        transaction instead of committing beside it and bringing the user back.
        """
        await self._last_seen.update_one(
            {"_id": user_id}, {"$set": {"last_seen": now}}, upsert=True, session=session
        )
        await self._last_seen.delete_one({"_id": user_id}, session=session)
        await self._deleted.update_one(
            {"_id": user_id}, {"$set": {"deleted_at": now}}, upsert=True, session=session
        )

    async def _add_activity(
        self, by_minute: Mapping[datetime, Counter[Activity]], session: AsyncClientSession
    ) -> None:
        buckets: dict[tuple[Grain, datetime], Counter[Activity]] = {}
        all_time: Counter[Activity] = Counter()
        for minute, counts in by_minute.items():
            all_time.update(counts)
            for grain in ACTIVITY_GRAINS:
                buckets.setdefault((grain, grain.floor(minute)), Counter()).update(counts)
        updates = [
            UpdateOne(
                {"grain": grain.value, "start": start},
                {
                    "$inc": _activity_increments(counts),
                    "$setOnInsert": {"expires_at": self._retention.expiry(grain, start)},
                },
                upsert=True,
            )
            for (grain, start), counts in buckets.items()
        ]
        if not updates:
            return
        updates.append(
            UpdateOne(
                {"grain": ALL_TIME, "start": EARLIEST},
                {"$inc": _activity_increments(all_time)},
                upsert=True,
            )
        )
        await self._activity.bulk_write(updates, session=session)

    async def _see_users(
        self, last_seen: Mapping[str, datetime], now: datetime, session: AsyncClientSession
    ) -> None:
        horizon = now - LAST_SEEN_TTL
        seen = {user: min(at, now) for user, at in last_seen.items() if at > horizon}
        if not seen:
            return
        stored = await _values_of(self._last_seen, list(seen), "last_seen", session)
        # A stored last_seen exists only while the user has no tombstone (forget_user deletes
        # one and writes the other together); only the users without one need the check.
        unknown = [user for user in seen if user not in stored]
        deleted = await _values_of(self._deleted, unknown, "deleted_at", session)
        updates = [
            UpdateOne({"_id": user}, {"$max": {"last_seen": at}}, upsert=True)
            for user, at in seen.items()
            if (user in stored and at - stored[user] >= LAST_SEEN_RESOLUTION)
            or (user not in stored and user not in deleted)
        ]
        if updates:
            await self._last_seen.bulk_write(updates, session=session)


async def _values_of(
    collection: AsyncCollection[Document],
    ids: list[str],
    field: str,
    session: AsyncClientSession,
) -> dict[str, Any]:
    """`field` of the documents with these ids, read IN_CHUNK ids at a time."""
    values: dict[str, Any] = {}
    for first in range(0, len(ids), IN_CHUNK):
        chunk = ids[first : first + IN_CHUNK]
        cursor = collection.find({"_id": {"$in": chunk}}, {field: 1}, session=session)
        async for document in cursor:
            values[document["_id"]] = document[field]
    return values


# --- the RPCs' reads ------------------------------------------------------------------------


class RollupReader:
    """Figures summed from the rollups; each read is a range on a collection's key index."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self._routes: AsyncCollection[Document] = database[ROUTE_ROLLUPS]
        self._activity: AsyncCollection[Document] = database[ACTIVITY_ROLLUPS]
        self._last_seen: AsyncCollection[Document] = database[LAST_SEEN]

    async def activity(self, ranges: Iterable[BucketRange]) -> Counter[Activity]:
        """The activity counts summed over the buckets of `ranges`."""
        documents = await self._read_all(self._activity, ranges, _ACTIVITY_FIELDS)
        totals: Counter[Activity] = Counter()
        for document in documents:
            totals.update(_activity_counts(document))
        return totals

    async def all_time(self) -> Counter[Activity]:
        """The activity counts since counting began."""
        document = await self._activity.find_one(
            {"grain": ALL_TIME, "start": EARLIEST}, _ACTIVITY_FIELDS
        )
        return Counter() if document is None else _activity_counts(document)

    async def routes(self, ranges: Iterable[BucketRange]) -> dict[tuple[str, str], RouteTally]:
        """Per (route, method), the tallies of `ranges`' buckets merged."""
        projection = {"route": 1, "method": 1, "count": 1, "errors": 1, "latency": 1}
        merged: dict[tuple[str, str], RouteTally] = {}
        for document in await self._read_all(self._routes, ranges, projection):
            key = (document["route"], document["method"])
            merged.setdefault(key, RouteTally()).merge(_tally_of(document))
        return merged

    async def series(self, bucket_range: BucketRange, activity: Activity) -> dict[datetime, int]:
        """The count of `activity` in each stored bucket of the range, by bucket start."""
        cursor = self._activity.find(
            _range_filter(bucket_range), {"start": 1, activity.value: 1, "_id": 0}
        )
        return {document["start"]: document.get(activity.value, 0) async for document in cursor}

    async def active_users(self, since: datetime) -> int:
        """How many users made a request after `since`, to LAST_SEEN_RESOLUTION.

        A stored last_seen may lag the user's latest request by up to the resolution, so one
        stored after `since` minus the resolution counts: a user whose last request came just
        before `since` may be counted, none after it is missed.
        """
        return await self._last_seen.count_documents(_seen_after(since))

    async def _read_all(
        self,
        collection: AsyncCollection[Document],
        ranges: Iterable[BucketRange],
        projection: Mapping[str, int],
    ) -> list[Document]:
        async def read(bucket_range: BucketRange) -> list[Document]:
            return await collection.find(_range_filter(bucket_range), projection).to_list()

        batches = await asyncio.gather(*(read(bucket_range) for bucket_range in ranges))
        return [document for batch in batches for document in batch]

    async def explain_routes(self, bucket_range: BucketRange) -> Document:
        """The server's explain() of the per-route read of one range (for tests and docs)."""
        plan: Document = await self._routes.find(_range_filter(bucket_range)).explain()
        return plan

    async def explain_activity(self, bucket_range: BucketRange) -> Document:
        """The server's explain() of the activity read of one range (for tests and docs)."""
        plan: Document = await self._activity.find(_range_filter(bucket_range)).explain()
        return plan

    async def explain_active_users(self, since: datetime) -> Document:
        """The server's explain() of the active-user count's query (for tests and docs)."""
        plan: Document = await self._last_seen.find(_seen_after(since)).explain()
        return plan


def _seen_after(since: datetime) -> Document:
    return {"last_seen": {"$gt": since - LAST_SEEN_RESOLUTION}}


def _activity_counts(document: Mapping[str, Any]) -> Counter[Activity]:
    return Counter({activity: document.get(activity.value, 0) for activity in Activity})
