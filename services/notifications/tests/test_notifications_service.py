"""The notifications service over gRPC against real SecantusDB, with real tokens.

The consumer points at a port nothing listens on: these tests must not create queues on, or
take events from, a broker other suites use. Notifications are stored directly, as the
handlers store them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import grpc
import pytest
from bson import ObjectId
from google.protobuf.message import Message
from taskmesh.common.v1 import common_pb2
from taskmesh.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from taskmesh_chassis.context import REQUEST_ID_KEY
from taskmesh_chassis.errors import field_errors_from_metadata
from taskmesh_chassis.testing import (
    CapturedLogs,
    ExpectedIndex,
    GrpcServiceContract,
    assert_indexes_exist,
    find_free_port,
)
from taskmesh_notifications.listing import ListQuery, Position
from taskmesh_notifications.repository import MongoNotificationStore
from taskmesh_notifications.settings import NotificationsSettings

from .conftest import SERVICE, Database, as_user, base_settings, new_id, open_database

Stub = notifications_pb2_grpc.NotificationsServiceStub
START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def stored_notification(
    user_id: str, minutes: int, *, read: bool = False, task_id: str | None = None
) -> dict[str, Any]:
    """A notification as the handlers store it, created `minutes` after START."""
    return {
        "_id": ObjectId(),
        "user_id": user_id,
        "type": "task.assigned",
        "title": "Task assigned to you",
        "body": f"number {minutes}",
        "task_id": task_id,
        "read": read,
        "created_at": START + timedelta(minutes=minutes),
    }


async def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    code: grpc.StatusCode = raised.value.code()
    return code


def list_request(
    *, limit: int = 0, cursor: str = "", unread_only: bool = False
) -> notifications_pb2.ListNotificationsRequest:
    return notifications_pb2.ListNotificationsRequest(
        page=common_pb2.PageRequest(limit=limit, cursor=cursor), unread_only=unread_only
    )


async def walk(stub: Stub, user_id: str, *, limit: int, unread_only: bool = False) -> list[str]:
    """The bodies of every notification of the user, page by page."""
    bodies: list[str] = []
    cursor = ""
    while True:
        page = await stub.ListNotifications(
            list_request(limit=limit, cursor=cursor, unread_only=unread_only),
            metadata=as_user(user_id),
            timeout=5,
        )
        assert len(page.notifications) <= limit
        bodies += [item.body for item in page.notifications]
        cursor = page.page.next_cursor
        if not cursor:
            return bodies


class TestNotificationsService(GrpcServiceContract):
    service = SERVICE
    full_service_name = "taskmesh.notifications.v1.NotificationsService"
    stub_class = notifications_pb2_grpc.NotificationsServiceStub
    unimplemented_rpc: ClassVar[tuple[str, Message]] = (
        "ListNotifications",
        notifications_pb2.ListNotificationsRequest(),
    )

    # Every RPC is implemented: test_every_rpc_is_implemented and
    # test_request_id_appears_in_the_access_log take the contract's place.
    test_rpc_not_implemented_yet_answers_unimplemented = None
    test_request_id_from_metadata_appears_in_the_access_log = None

    @pytest.fixture
    def settings(  # type: ignore[override]
        self, secantus_url: str, free_port: int
    ) -> NotificationsSettings:
        return base_settings(
            secantus_url,
            free_port,
            mongodb_database_prefix=f"test_{uuid.uuid4().hex[:12]}_",
            amqp_url=f"amqp://guest:guest@127.0.0.1:{find_free_port()}/",
        )

    @pytest.fixture
    def stub(self, channel: grpc.aio.Channel) -> Stub:
        return Stub(channel)

    @pytest.fixture
    async def database(self, settings: NotificationsSettings) -> AsyncIterator[Database]:
        async with open_database(settings) as database:
            yield database

    # --- the service ------------------------------------------------------------------------

    async def test_every_rpc_is_implemented(self, stub: Stub) -> None:
        metadata = as_user(new_id())
        calls = {
            "ListNotifications": stub.ListNotifications(list_request(), metadata=metadata),
            "MarkRead": stub.MarkRead(notifications_pb2.MarkReadRequest(), metadata=metadata),
            "MarkAllRead": stub.MarkAllRead(
                notifications_pb2.MarkAllReadRequest(), metadata=metadata
            ),
        }
        codes = {}
        for name, call in calls.items():
            try:
                await call
                codes[name] = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                codes[name] = error.code()

        service = notifications_pb2.DESCRIPTOR.services_by_name["NotificationsService"]
        assert set(codes) == {method.name for method in service.methods}
        assert grpc.StatusCode.UNIMPLEMENTED not in codes.values(), codes

    async def test_request_id_appears_in_the_access_log(
        self, stub: Stub, logs: CapturedLogs
    ) -> None:
        metadata = [*as_user(new_id()), (REQUEST_ID_KEY, "notifications-req-7")]
        await stub.ListNotifications(list_request(), metadata=metadata, timeout=5)

        handled = [
            line
            for line in logs.events("rpc.handled")
            if line["method"].endswith("/ListNotifications")
        ]
        assert [line["request_id"] for line in handled] == ["notifications-req-7"]

    async def test_anonymous_callers_are_unauthenticated(self, stub: Stub) -> None:
        calls = [
            stub.ListNotifications(list_request(), timeout=5),
            stub.MarkRead(notifications_pb2.MarkReadRequest(notification_id=new_id()), timeout=5),
            stub.MarkAllRead(notifications_pb2.MarkAllReadRequest(), timeout=5),
        ]
        for call in calls:
            assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED

    async def test_indexes_exist_after_start_up(
        self, settings: NotificationsSettings, channel: grpc.aio.Channel
    ) -> None:
        await assert_indexes_exist(
            settings,
            "notifications",
            [
                ExpectedIndex([("user_id", 1), ("created_at", -1), ("_id", -1)]),
                ExpectedIndex([("user_id", 1), ("read", 1), ("created_at", -1), ("_id", -1)]),
            ],
        )
        await assert_indexes_exist(settings, "due_tasks", [ExpectedIndex([("pending_due_at", 1)])])

    # --- ListNotifications ------------------------------------------------------------------

    async def test_list_is_the_callers_own_newest_first(
        self, stub: Stub, database: Database
    ) -> None:
        me, other = new_id(), new_id()
        task_id = new_id()
        await database.notifications.insert_many(
            [
                stored_notification(me, 1),
                stored_notification(me, 3, read=True, task_id=task_id),
                stored_notification(me, 2),
                stored_notification(other, 4),
            ]
        )

        page = await stub.ListNotifications(list_request(), metadata=as_user(me), timeout=5)

        assert [item.body for item in page.notifications] == ["number 3", "number 2", "number 1"]
        newest = page.notifications[0]
        assert (newest.type, newest.title, newest.read, newest.task_id) == (
            "task.assigned",
            "Task assigned to you",
            True,
            task_id,
        )
        assert newest.created_at.ToDatetime(tzinfo=UTC) == START + timedelta(minutes=3)
        assert not page.notifications[1].HasField("task_id")
        assert page.page.next_cursor == ""

    async def test_unread_only_lists_the_unread(self, stub: Stub, database: Database) -> None:
        me = new_id()
        await database.notifications.insert_many(
            [stored_notification(me, minute, read=minute % 2 == 0) for minute in range(7)]
        )

        bodies = await walk(stub, me, limit=2, unread_only=True)

        assert bodies == ["number 5", "number 3", "number 1"]

    async def test_paging_walks_every_notification_once_across_equal_times(
        self, stub: Stub, database: Database
    ) -> None:
        me = new_id()
        documents = [stored_notification(me, minute) for minute in range(5)]
        ties = [stored_notification(me, 2) for _ in range(3)]
        await database.notifications.insert_many(documents + ties)

        bodies = await walk(stub, me, limit=2)

        assert len(bodies) == 8
        assert bodies == sorted(bodies, reverse=True)
        ids = [str(document["_id"]) for document in documents + ties]
        listed = [
            item.id
            for item in (
                await stub.ListNotifications(
                    list_request(limit=100), metadata=as_user(me), timeout=5
                )
            ).notifications
        ]
        assert sorted(listed) == sorted(ids)

    async def test_a_walk_skips_nothing_while_new_notifications_arrive(
        self, stub: Stub, database: Database
    ) -> None:
        me = new_id()
        await database.notifications.insert_many([stored_notification(me, m) for m in range(6)])
        first = await stub.ListNotifications(list_request(limit=3), metadata=as_user(me), timeout=5)
        await database.notifications.insert_one(stored_notification(me, 60))

        rest = await stub.ListNotifications(
            list_request(limit=3, cursor=first.page.next_cursor), metadata=as_user(me), timeout=5
        )

        assert [item.body for item in [*first.notifications, *rest.notifications]] == [
            f"number {minute}" for minute in (5, 4, 3, 2, 1, 0)
        ]

    async def test_limit_outside_1_to_100_is_invalid(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListNotifications(
                list_request(limit=101), metadata=as_user(new_id()), timeout=5
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        errors = field_errors_from_metadata(raised.value.trailing_metadata() or ())
        assert [list(error.loc) for error in errors] == [["query", "limit"]]

    async def test_a_cursor_that_is_not_ours_is_invalid(self, stub: Stub) -> None:
        call = stub.ListNotifications(
            list_request(cursor="eyJ2IjoxfQ"), metadata=as_user(new_id()), timeout=5
        )
        assert await code_of(call) == grpc.StatusCode.INVALID_ARGUMENT

    async def test_list_pages_are_served_by_the_user_indexes(
        self, channel: grpc.aio.Channel, database: Database
    ) -> None:
        me = new_id()
        await database.notifications.insert_many(
            [stored_notification(user, m) for user in (me, new_id(), new_id()) for m in range(30)]
        )
        store = MongoNotificationStore(database)
        after = Position(created_at=START + timedelta(minutes=10), id=str(ObjectId()))
        queries = {
            "first page": (ListQuery(user_id=me), "user_id_created_at_id"),
            "next page": (ListQuery(user_id=me, after=after), "user_id_created_at_id"),
            "unread": (
                ListQuery(user_id=me, unread_only=True, after=after),
                "user_id_read_created_at_id",
            ),
        }

        for name, (query, index) in queries.items():
            for plan in await store.explain_page(query):
                winning = str(plan["queryPlanner"]["winningPlan"])
                assert "COLLSCAN" not in winning, name
                assert f"'indexName': '{index}'" in winning, name
                assert plan["executionStats"]["totalDocsExamined"] <= 30, name

    # --- MarkRead / MarkAllRead -----------------------------------------------------------------

    async def test_mark_read_marks_the_callers_notification(
        self, stub: Stub, database: Database
    ) -> None:
        me = new_id()
        document = stored_notification(me, 1)
        await database.notifications.insert_one(document)
        request = notifications_pb2.MarkReadRequest(notification_id=str(document["_id"]))

        await stub.MarkRead(request, metadata=as_user(me), timeout=5)
        await stub.MarkRead(request, metadata=as_user(me), timeout=5)

        stored = await database.notifications.find_one({"_id": document["_id"]})
        assert stored is not None
        assert stored["read"] is True

    async def test_mark_read_of_another_users_notification_is_not_found(
        self, stub: Stub, database: Database
    ) -> None:
        owner, intruder = new_id(), new_id()
        document = stored_notification(owner, 1)
        await database.notifications.insert_one(document)
        request = notifications_pb2.MarkReadRequest(notification_id=str(document["_id"]))

        code = await code_of(stub.MarkRead(request, metadata=as_user(intruder), timeout=5))

        assert code == grpc.StatusCode.NOT_FOUND
        stored = await database.notifications.find_one({"_id": document["_id"]})
        assert stored is not None
        assert stored["read"] is False

    @pytest.mark.parametrize(
        "notification_id",
        ["", "nope", "{'$ne': null}", "ZZZZZZZZZZZZZZZZZZZZZZZZ", str(ObjectId())],
        ids=["empty", "short", "operator", "not-hex", "unknown"],
    )
    async def test_mark_read_of_a_malformed_or_unknown_id_is_not_found(
        self, stub: Stub, notification_id: str
    ) -> None:
        request = notifications_pb2.MarkReadRequest(notification_id=notification_id)
        code = await code_of(stub.MarkRead(request, metadata=as_user(new_id()), timeout=5))
        assert code == grpc.StatusCode.NOT_FOUND

    async def test_mark_all_read_marks_only_the_callers(
        self, stub: Stub, database: Database
    ) -> None:
        me, other = new_id(), new_id()
        await database.notifications.insert_many(
            [stored_notification(me, m) for m in range(4)] + [stored_notification(other, 9)]
        )

        await stub.MarkAllRead(notifications_pb2.MarkAllReadRequest(), metadata=as_user(me))

        assert await database.notifications.count_documents({"user_id": me, "read": False}) == 0
        assert await database.notifications.count_documents({"user_id": other, "read": False}) == 1
        unread = await walk(stub, me, limit=10, unread_only=True)
        assert unread == []

    async def test_concurrent_mark_all_read_calls_all_succeed(
        self, stub: Stub, database: Database
    ) -> None:
        me = new_id()
        await database.notifications.insert_many([stored_notification(me, m) for m in range(5)])

        await asyncio.gather(
            *(
                stub.MarkAllRead(
                    notifications_pb2.MarkAllReadRequest(), metadata=as_user(me), timeout=5
                )
                for _ in range(3)
            )
        )

        assert await database.notifications.count_documents({"user_id": me, "read": False}) == 0
