"""The profile store against real SecantusDB: creation races, tombstones and query plans."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import PyMongoError
from taskmesh_chassis.events import Outbox
from taskmesh_users.domain import Account, Profile, Role, new_profile
from taskmesh_users.listing import ListQuery, ProfileFilter
from taskmesh_users.repository import IdentityCopies, MongoProfileStore, Outcome

from .conftest import new_user_id, seed_profile

pytestmark = pytest.mark.integration


def a_profile(name: str = "Ada") -> Profile:
    account = Account(new_user_id(), "ada@example.org", Role.USER, True, datetime.now(UTC))
    return new_profile(account, name)


def store_over(database: Any) -> MongoProfileStore:
    return MongoProfileStore(database, Outbox(database, source="taskmesh/users"))


def winning_plan(plan: dict[str, Any]) -> str:
    return json.dumps(plan.get("queryPlanner", {}).get("winningPlan", {}), default=str)


async def test_create_returns_the_profile_the_consumer_stored_first(users_db: Any) -> None:
    registered = a_profile("From the event")
    async with (
        users_db.client.start_session() as session,
        await session.start_transaction(),
    ):
        assert await IdentityCopies(users_db).create(registered, session) is Outcome.APPLIED

    stored = await store_over(users_db).create(replace(registered, name="From the RPC"))

    assert stored == registered


async def test_create_of_a_deleted_user_stores_nothing(users_db: Any) -> None:
    profile = a_profile()
    async with (
        users_db.client.start_session() as session,
        await session.start_transaction(),
    ):
        await IdentityCopies(users_db).delete(profile.id, datetime.now(UTC), session)

    assert await store_over(users_db).create(profile) is None
    assert await users_db.profiles.count_documents({}) == 0


async def test_a_deletion_without_a_profile_still_conflicts_with_its_creation(
    users_db: Any,
) -> None:
    # user.deleted and CreateProfile at once, each having seen neither the profile nor the
    # tombstone: the creation must not commit beside the deletion.
    profile = a_profile()
    copies = IdentityCopies(users_db)
    async with users_db.client.start_session() as deleting:
        await deleting.start_transaction()
        await copies.delete(profile.id, datetime.now(UTC), deleting)

        async with users_db.client.start_session() as creating:
            await creating.start_transaction()
            with pytest.raises(PyMongoError) as raised:
                await copies.create(profile, creating)
            await creating.abort_transaction()
        await deleting.commit_transaction()

    assert raised.value.has_error_label("TransientTransactionError")
    assert await store_over(users_db).create(profile) is None
    assert await users_db.profiles.count_documents({}) == 0


@pytest.mark.parametrize(
    ("profile_filter", "index"),
    [(ProfileFilter(role=Role.ADMIN), "role_id"), (ProfileFilter(active=False), "active_id")],
)
async def test_role_or_active_filtered_pages_are_served_by_an_index(
    users_db: Any, profile_filter: ProfileFilter, index: str
) -> None:
    for i in range(60):
        await seed_profile(
            users_db,
            f"u{i}@example.org",
            role=Role.ADMIN if i % 20 == 0 else Role.USER,
            active=i % 15 != 0,
        )
    after = await seed_profile(users_db, "cursor@example.org")
    store = store_over(users_db)

    plans = [
        winning_plan(await store.explain_page(ListQuery(profile_filter, limit=20, after=position)))
        for position in (None, after)
    ]

    for plan in plans:
        assert '"stage": "IXSCAN"' in plan
        assert f'"indexName": "{index}"' in plan
        assert "COLLSCAN" not in plan


async def test_email_lookup_is_served_by_the_email_index(users_db: Any) -> None:
    for i in range(50):
        await seed_profile(users_db, f"u{i}@example.org")

    plan = winning_plan(await store_over(users_db).explain_lookup("u7@example.org"))

    assert '"stage": "IXSCAN"' in plan
    assert '"indexName": "email"' in plan
    assert "COLLSCAN" not in plan
