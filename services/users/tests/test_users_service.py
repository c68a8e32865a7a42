"""The users service over gRPC against real SecantusDB, with real tokens and a stand-in auth."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import grpc
import pytest
from bson import ObjectId
from google.protobuf.message import Message
from pymongo import AsyncMongoClient
from taskmesh.common.v1 import common_pb2
from taskmesh.users.v1 import users_pb2, users_pb2_grpc
from taskmesh_chassis.errors import FIELD_ERRORS_KEY
from taskmesh_chassis.events import decode_event
from taskmesh_chassis.testing import ExpectedIndex, GrpcServiceContract, assert_indexes_exist
from taskmesh_users.domain import Role
from taskmesh_users.settings import UsersSettings

from .conftest import SERVICE, RunningAuth, as_user, new_user_id, seed_profile

Stub = users_pb2_grpc.UsersServiceStub


async def error_of(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def code_of(call: Any) -> grpc.StatusCode:
    code: grpc.StatusCode = (await error_of(call)).code()
    return code


def field_error_locs(error: grpc.aio.AioRpcError) -> list[list[str]]:
    trailer = dict(error.trailing_metadata() or ())
    return [item["loc"] for item in json.loads(trailer[FIELD_ERRORS_KEY])]


class TestUsersService(GrpcServiceContract):
    service = SERVICE
    full_service_name = "taskmesh.users.v1.UsersService"
    stub_class = users_pb2_grpc.UsersServiceStub
    unimplemented_rpc: ClassVar[tuple[str, Message]] = (
        "GetProfile",
        users_pb2.GetProfileRequest(),
    )

    # Every RPC is implemented: test_every_rpc_is_implemented takes the contract's place.
    test_rpc_not_implemented_yet_answers_unimplemented = None
    test_request_id_from_metadata_appears_in_the_access_log = None

    @pytest.fixture
    def settings(  # type: ignore[override]
        self, secantus_url: str, free_port: int, fake_auth: RunningAuth, dead_amqp_url: str
    ) -> UsersSettings:
        return UsersSettings(
            grpc_port=free_port,
            metrics_port=0,
            mongodb_url=secantus_url,
            mongodb_database_prefix=f"test_{uuid.uuid4().hex[:12]}_",
            auth_grpc_target=fake_auth.target,
            amqp_url=dead_amqp_url,
            auth_timeout_s=1.0,
            shutdown_grace_s=1.0,
        )

    @pytest.fixture
    def stub(self, channel: grpc.aio.Channel) -> Stub:
        return users_pb2_grpc.UsersServiceStub(channel)

    @pytest.fixture
    async def database(self, settings: UsersSettings) -> AsyncIterator[Any]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongodb_url.get_secret_value(), tz_aware=True
        )
        yield client[settings.mongodb_database]
        await client.close()

    @pytest.fixture
    def admin(self) -> list[tuple[str, str]]:
        return as_user(new_user_id(), "admin")

    async def register(
        self, stub: Stub, fake_auth: RunningAuth, email: str, name: str = "Ada", **account: Any
    ) -> users_pb2.Profile:
        """An account in auth, and its profile created as auth does right after register."""
        user_id = new_user_id()
        fake_auth.fake.add(user_id, email, **account)
        profile: users_pb2.Profile = await stub.CreateProfile(
            users_pb2.CreateProfileRequest(name=name), metadata=as_user(user_id), timeout=5
        )
        return profile

    # --- the service ------------------------------------------------------------------------

    async def test_indexes_exist_after_start_up(
        self, settings: UsersSettings, channel: grpc.aio.Channel
    ) -> None:
        expected = [
            ExpectedIndex([("email", 1)]),
            ExpectedIndex([("role", 1), ("_id", 1)]),
            ExpectedIndex([("active", 1), ("_id", 1)]),
        ]
        await assert_indexes_exist(settings, "profiles", expected)

    async def test_every_rpc_is_implemented(self, stub: Stub) -> None:
        metadata = as_user(new_user_id())
        calls = {
            "CreateProfile": stub.CreateProfile(
                users_pb2.CreateProfileRequest(), metadata=metadata
            ),
            "GetProfile": stub.GetProfile(users_pb2.GetProfileRequest(), metadata=metadata),
            "UpdateProfile": stub.UpdateProfile(
                users_pb2.UpdateProfileRequest(), metadata=metadata
            ),
            "LookupByEmail": stub.LookupByEmail(
                users_pb2.LookupByEmailRequest(), metadata=metadata
            ),
            "ListUsers": stub.ListUsers(users_pb2.ListUsersRequest(), metadata=metadata),
            "GetUser": stub.GetUser(users_pb2.GetUserRequest(), metadata=metadata),
        }
        codes = {}
        for name, call in calls.items():
            try:
                await call
                codes[name] = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                codes[name] = error.code()

        service = users_pb2.DESCRIPTOR.services_by_name["UsersService"]
        assert set(codes) == {method.name for method in service.methods}
        assert grpc.StatusCode.UNIMPLEMENTED not in codes.values(), codes

    async def test_anonymous_callers_are_unauthenticated(self, stub: Stub) -> None:
        calls = [
            stub.GetProfile(users_pb2.GetProfileRequest(), timeout=5),
            stub.LookupByEmail(users_pb2.LookupByEmailRequest(email="a@b.io"), timeout=5),
            stub.ListUsers(users_pb2.ListUsersRequest(), timeout=5),
        ]
        assert {await code_of(call) for call in calls} == {grpc.StatusCode.UNAUTHENTICATED}

    # --- CreateProfile ----------------------------------------------------------------------

    async def test_create_profile_copies_the_account_from_auth_as_the_caller(
        self, stub: Stub, fake_auth: RunningAuth
    ) -> None:
        registered = datetime(2026, 5, 4, 3, 2, 1, 987654, tzinfo=UTC)

        created = await self.register(
            stub,
            fake_auth,
            "ada@example.org",
            name="  Ada Lovelace ",
            role=common_pb2.ROLE_ADMIN,
            created_at=registered,
        )
        fetched = await stub.GetProfile(users_pb2.GetProfileRequest(), metadata=as_user(created.id))

        assert fetched == created
        assert (created.email, created.name, created.role, created.active) == (
            "ada@example.org",
            "Ada Lovelace",
            common_pb2.ROLE_ADMIN,
            True,
        )
        assert (created.bio, created.timezone, created.email_notifications) == ("", "UTC", True)
        assert created.created_at.ToDatetime(tzinfo=UTC) == registered.replace(microsecond=987000)
        assert created.updated_at == created.created_at
        assert fake_auth.fake.authorizations[0].startswith("Bearer ")

    async def test_create_profile_twice_returns_the_first_profile_unchanged(
        self, stub: Stub, fake_auth: RunningAuth
    ) -> None:
        first = await self.register(stub, fake_auth, "ada@example.org", name="Ada")

        again = await stub.CreateProfile(
            users_pb2.CreateProfileRequest(name="Somebody Else"), metadata=as_user(first.id)
        )

        assert again == first
        assert len(fake_auth.fake.authorizations) == 1

    async def test_create_profile_with_an_invalid_name_is_invalid_argument(
        self, stub: Stub, fake_auth: RunningAuth
    ) -> None:
        user_id = new_user_id()
        fake_auth.fake.add(user_id, "ada@example.org")

        error = await error_of(
            stub.CreateProfile(users_pb2.CreateProfileRequest(name="  "), metadata=as_user(user_id))
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_error_locs(error) == [["body", "name"]]

    async def test_create_profile_of_a_deleted_user_is_not_found_without_asking_auth(
        self, stub: Stub, fake_auth: RunningAuth, database: Any
    ) -> None:
        user_id = new_user_id()
        fake_auth.fake.add(user_id, "ada@example.org")
        await database.deleted_users.insert_one(
            {"_id": ObjectId(user_id), "deleted_at": datetime.now(UTC)}
        )

        call = stub.CreateProfile(
            users_pb2.CreateProfileRequest(name="Ada"), metadata=as_user(user_id)
        )

        assert await code_of(call) == grpc.StatusCode.NOT_FOUND
        assert fake_auth.fake.authorizations == []
        assert await database.profiles.count_documents({}) == 0

    async def test_create_profile_of_an_account_unknown_to_auth_is_not_found(
        self, stub: Stub, database: Any
    ) -> None:
        call = stub.CreateProfile(
            users_pb2.CreateProfileRequest(name="Ada"), metadata=as_user(new_user_id())
        )

        assert await code_of(call) == grpc.StatusCode.NOT_FOUND
        assert await database.profiles.count_documents({}) == 0

    async def test_create_profile_while_auth_is_down_is_unavailable(
        self, stub: Stub, fake_auth: RunningAuth, database: Any
    ) -> None:
        user_id = new_user_id()
        fake_auth.fake.add(user_id, "ada@example.org")
        await fake_auth.server.stop(0)

        call = stub.CreateProfile(
            users_pb2.CreateProfileRequest(name="Ada"), metadata=as_user(user_id), timeout=10
        )

        assert await code_of(call) == grpc.StatusCode.UNAVAILABLE
        assert await database.profiles.count_documents({}) == 0

    async def test_create_profile_when_auth_is_too_slow_is_deadline_exceeded(
        self, stub: Stub, fake_auth: RunningAuth, database: Any
    ) -> None:
        user_id = new_user_id()
        fake_auth.fake.add(user_id, "ada@example.org")
        fake_auth.fake.delay_s = 1.5

        call = stub.CreateProfile(
            users_pb2.CreateProfileRequest(name="Ada"), metadata=as_user(user_id), timeout=10
        )

        assert await code_of(call) == grpc.StatusCode.DEADLINE_EXCEEDED
        assert await database.profiles.count_documents({}) == 0

    # --- GetProfile / UpdateProfile ---------------------------------------------------------

    async def test_get_profile_without_one_is_not_found(self, stub: Stub) -> None:
        call = stub.GetProfile(users_pb2.GetProfileRequest(), metadata=as_user(new_user_id()))
        assert await code_of(call) == grpc.StatusCode.NOT_FOUND

    async def test_update_changes_the_profile_and_writes_its_event_to_the_outbox(
        self, stub: Stub, fake_auth: RunningAuth, database: Any
    ) -> None:
        profile = await self.register(stub, fake_auth, "ada@example.org", name="Ada")

        updated = await stub.UpdateProfile(
            users_pb2.UpdateProfileRequest(
                name=" Countess ", timezone="Europe/London", email_notifications=False
            ),
            metadata=as_user(profile.id),
        )
        fetched = await stub.GetProfile(users_pb2.GetProfileRequest(), metadata=as_user(profile.id))

        assert (updated.name, updated.timezone, updated.email_notifications, updated.bio) == (
            "Countess",
            "Europe/London",
            False,
            "",
        )
        assert updated.updated_at.ToDatetime() > profile.updated_at.ToDatetime()
        assert fetched == updated
        records = await database.outbox.find({"subject": profile.id}).to_list()
        events = [decode_event(bytes(record["body"])) for record in records]
        assert [(event.type, event.source) for event in events] == [
            ("user.profile_updated", "taskmesh/users")
        ]
        payload = events[0].payload
        assert (
            payload.user_id,
            payload.email,
            payload.name,
            payload.timezone,
            payload.email_notifications,
        ) == (profile.id, "ada@example.org", "Countess", "Europe/London", False)

    async def test_update_that_changes_nothing_writes_nothing(
        self, stub: Stub, fake_auth: RunningAuth, database: Any
    ) -> None:
        profile = await self.register(stub, fake_auth, "ada@example.org", name="Ada")

        unchanged = await stub.UpdateProfile(
            users_pb2.UpdateProfileRequest(name="Ada ", timezone="UTC"),
            metadata=as_user(profile.id),
        )

        assert unchanged == profile
        assert await database.outbox.count_documents({}) == 0

    async def test_update_names_every_invalid_field_and_changes_nothing(
        self, stub: Stub, fake_auth: RunningAuth, database: Any
    ) -> None:
        profile = await self.register(stub, fake_auth, "ada@example.org")

        error = await error_of(
            stub.UpdateProfile(
                users_pb2.UpdateProfileRequest(
                    name="x" * 101, bio="b" * 501, timezone="Nowhere/Town"
                ),
                metadata=as_user(profile.id),
            )
        )

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_error_locs(error) == [["body", "name"], ["body", "bio"], ["body", "timezone"]]
        assert await database.outbox.count_documents({}) == 0

    async def test_concurrent_updates_all_land_and_the_last_event_shows_them_all(
        self, stub: Stub, fake_auth: RunningAuth, database: Any
    ) -> None:
        profile = await self.register(stub, fake_auth, "ada@example.org", name="Ada")
        changes = [
            {"name": "Countess"},
            {"bio": "Analyst"},
            {"timezone": "Europe/London"},
            {"email_notifications": False},
        ]

        await asyncio.gather(
            *(
                stub.UpdateProfile(
                    users_pb2.UpdateProfileRequest(**change),
                    metadata=as_user(profile.id),
                    timeout=10,
                )
                for change in changes
            )
        )
        final = await stub.GetProfile(users_pb2.GetProfileRequest(), metadata=as_user(profile.id))
        records = await database.outbox.find({}).sort("pending_seq", 1).to_list()
        last = decode_event(bytes(records[-1]["body"])).payload

        assert (final.name, final.bio, final.timezone, final.email_notifications) == (
            "Countess",
            "Analyst",
            "Europe/London",
            False,
        )
        assert len(records) == 4
        assert (last.name, last.timezone, last.email_notifications) == (
            "Countess",
            "Europe/London",
            False,
        )

    async def test_update_without_a_profile_is_not_found(self, stub: Stub) -> None:
        call = stub.UpdateProfile(
            users_pb2.UpdateProfileRequest(bio="hello"), metadata=as_user(new_user_id())
        )
        assert await code_of(call) == grpc.StatusCode.NOT_FOUND

    async def test_search_follows_a_changed_name(
        self, stub: Stub, fake_auth: RunningAuth, admin: list[tuple[str, str]]
    ) -> None:
        profile = await self.register(stub, fake_auth, "ada@example.org", name="Ada")
        await stub.UpdateProfile(
            users_pb2.UpdateProfileRequest(name="Countess Lovelace"),
            metadata=as_user(profile.id),
        )

        found = await stub.ListUsers(users_pb2.ListUsersRequest(q="LOVELACE"), metadata=admin)
        stale = await stub.ListUsers(users_pb2.ListUsersRequest(q="ada\n"), metadata=admin)

        assert [p.id for p in found.profiles] == [profile.id]
        assert list(stale.profiles) == []

    # --- LookupByEmail ----------------------------------------------------------------------

    async def test_lookup_is_exact_and_case_insensitive(
        self, stub: Stub, fake_auth: RunningAuth
    ) -> None:
        ada = await self.register(stub, fake_auth, "ada@example.org", name="Ada")
        caller = as_user(new_user_id())

        found = await stub.LookupByEmail(
            users_pb2.LookupByEmailRequest(email="  ADA@Example.ORG "), metadata=caller
        )
        partial = stub.LookupByEmail(
            users_pb2.LookupByEmailRequest(email="ada@example"), metadata=caller
        )

        assert (found.id, found.name) == (ada.id, "Ada")
        assert await code_of(partial) == grpc.StatusCode.NOT_FOUND

    @pytest.mark.parametrize("email", ["grace@example.org", "", "no-at-sign", "a" * 400 + "@x.io"])
    async def test_lookup_of_an_inactive_user_or_malformed_input_is_not_found(
        self, stub: Stub, database: Any, email: str
    ) -> None:
        await seed_profile(database, "grace@example.org", active=False)

        call = stub.LookupByEmail(
            users_pb2.LookupByEmailRequest(email=email), metadata=as_user(new_user_id())
        )

        assert await code_of(call) == grpc.StatusCode.NOT_FOUND

    async def test_lookup_prefers_the_newest_active_profile_of_an_email(
        self, stub: Stub, database: Any
    ) -> None:
        now = datetime.now(UTC)
        await seed_profile(
            database, "ada@example.org", name="Old", created_at=now - timedelta(days=9)
        )
        newest = await seed_profile(database, "ada@example.org", name="New", created_at=now)
        await seed_profile(
            database,
            "ada@example.org",
            name="Newer but inactive",
            active=False,
            created_at=now + timedelta(days=1),
        )

        found = await stub.LookupByEmail(
            users_pb2.LookupByEmailRequest(email="ada@example.org"),
            metadata=as_user(new_user_id()),
        )

        assert (found.id, found.name) == (newest, "New")

    # --- admin RPCs -------------------------------------------------------------------------

    async def test_non_admins_may_not_list_or_get_users(
        self, stub: Stub, fake_auth: RunningAuth
    ) -> None:
        me = await self.register(stub, fake_auth, "ada@example.org")
        caller = as_user(me.id)
        calls = [
            stub.ListUsers(users_pb2.ListUsersRequest(), metadata=caller),
            stub.ListUsers(users_pb2.ListUsersRequest(role=99), metadata=caller),
            stub.GetUser(users_pb2.GetUserRequest(user_id=me.id), metadata=caller),
        ]
        assert {await code_of(call) for call in calls} == {grpc.StatusCode.PERMISSION_DENIED}

    async def test_admins_get_any_user_and_not_found_for_unknown_or_malformed_ids(
        self, stub: Stub, fake_auth: RunningAuth, admin: list[tuple[str, str]]
    ) -> None:
        ada = await self.register(stub, fake_auth, "ada@example.org")

        fetched = await stub.GetUser(users_pb2.GetUserRequest(user_id=ada.id), metadata=admin)
        codes = [
            await code_of(stub.GetUser(users_pb2.GetUserRequest(user_id=user_id), metadata=admin))
            for user_id in (new_user_id(), "nope", "", "{'$ne': 1}")
        ]

        assert fetched == ada
        assert set(codes) == {grpc.StatusCode.NOT_FOUND}

    async def test_list_filters_by_q_role_and_active(
        self, stub: Stub, database: Any, admin: list[tuple[str, str]]
    ) -> None:
        ada = await seed_profile(database, "ada@example.org", name="Ada (a+b).*")
        boss = await seed_profile(database, "boss@corp.io", name="The Boss", role=Role.ADMIN)
        gone = await seed_profile(database, "gone@corp.io", name="Gone", active=False)
        decoy = await seed_profile(database, "decoy@corp.io", name="Ada ab")

        async def listed(**request: Any) -> list[str]:
            page = await stub.ListUsers(users_pb2.ListUsersRequest(**request), metadata=admin)
            return [profile.id for profile in page.profiles]

        assert await listed() == [ada, boss, gone, decoy]
        assert await listed(q="(A+B).*") == [ada]
        assert await listed(q="CORP.IO") == [boss, gone, decoy]
        assert await listed(q="corp.io", role=common_pb2.ROLE_USER) == [gone, decoy]
        assert await listed(role=common_pb2.ROLE_ADMIN) == [boss]
        assert await listed(active=False) == [gone]
        assert await listed(q="corp", active=True, role=common_pb2.ROLE_USER) == [decoy]

    async def test_unknown_role_filter_is_invalid_argument(
        self, stub: Stub, admin: list[tuple[str, str]]
    ) -> None:
        error = await error_of(stub.ListUsers(users_pb2.ListUsersRequest(role=7), metadata=admin))

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_error_locs(error) == [["query", "role"]]

    async def test_malformed_cursor_is_invalid_argument_at_query_cursor(
        self, stub: Stub, admin: list[tuple[str, str]]
    ) -> None:
        request = users_pb2.ListUsersRequest(page=common_pb2.PageRequest(cursor="eyJ2IjoxfQ"))

        error = await error_of(stub.ListUsers(request, metadata=admin))

        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_error_locs(error) == [["query", "cursor"]]

    async def test_cursor_walk_with_inserts_and_deletes_sees_every_profile_once(
        self, stub: Stub, database: Any, admin: list[tuple[str, str]]
    ) -> None:
        originals = [await seed_profile(database, f"user{i}@example.org") for i in range(13)]
        doomed = originals[-1]
        seen: list[str] = []
        cursor, pages = "", 0
        while True:
            page = await stub.ListUsers(
                users_pb2.ListUsersRequest(page=common_pb2.PageRequest(limit=4, cursor=cursor)),
                metadata=admin,
            )
            seen.extend(profile.id for profile in page.profiles)
            pages += 1
            if pages == 2:
                # One user added, one not yet listed deleted (as user.deleted does), and the
                # one the cursor names deleted too: the position stays valid without it.
                await seed_profile(database, "late@example.org")
                await database.profiles.delete_one({"_id": ObjectId(doomed)})
                await database.profiles.delete_one({"_id": ObjectId(seen[-1])})
            if not page.page.next_cursor:
                break
            cursor = page.page.next_cursor

        kept = originals[:-1]
        assert [user_id for user_id in seen if user_id in kept] == kept
        assert doomed not in seen
        assert len(seen) == len(set(seen)) == 13
