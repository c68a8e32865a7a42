"""The tasks service over gRPC against real SecantusDB, with real tokens and a stand-in auth."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import grpc
import pytest
from bson import ObjectId
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from pymongo import AsyncMongoClient
from taskmesh.common.v1 import common_pb2
from taskmesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from taskmesh_chassis.events import Outbox, decode_event
from taskmesh_chassis.identity import StaticJwksProvider
from taskmesh_chassis.mongo import ensure_indexes
from taskmesh_chassis.testing import ExpectedIndex, GrpcServiceContract, assert_indexes_exist
from taskmesh_tasks.domain import Viewer
from taskmesh_tasks.grpc_api import AFFECTED_USERS_KEY
from taskmesh_tasks.listing import ListQuery, Scope, SortOrder
from taskmesh_tasks.main import tasks_service
from taskmesh_tasks.repository import INDEXES, MongoTaskStore
from taskmesh_tasks.settings import TasksSettings

from .conftest import KID, SIGNING_KEY, RunningAuth, mint_token

SERVICE = tasks_service(StaticJwksProvider({KID: SIGNING_KEY.public_key()}))
MAX_UPLOAD = 1000

Metadata = Sequence[tuple[str, str]]


def new_user_id() -> str:
    return str(ObjectId())


def as_user(user_id: str, role: str = "user") -> Metadata:
    return [("authorization", f"Bearer {mint_token(user_id, role)}")]


async def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    code: grpc.StatusCode = raised.value.code()
    return code


def upload_requests(
    task_id: str, *chunks: bytes, filename: str = "notes.txt"
) -> list[tasks_pb2.UploadAttachmentRequest]:
    metadata = tasks_pb2.AttachmentUpload(
        task_id=task_id, filename=filename, content_type="text/plain"
    )
    return [
        tasks_pb2.UploadAttachmentRequest(metadata=metadata),
        *(tasks_pb2.UploadAttachmentRequest(chunk=chunk) for chunk in chunks),
    ]


class TestTasksService(GrpcServiceContract):
    service = SERVICE
    full_service_name = "taskmesh.tasks.v1.TasksService"
    stub_class = tasks_pb2_grpc.TasksServiceStub
    unimplemented_rpc: ClassVar[tuple[str, Message]] = (
        "GetTask",
        tasks_pb2.GetTaskRequest(task_id="665f1c2e9b1e8a0012345678"),
    )

    # Every RPC is implemented: test_every_rpc_is_implemented takes the contract's place.
    test_rpc_not_implemented_yet_answers_unimplemented = None
    test_request_id_from_metadata_appears_in_the_access_log = None

    @pytest.fixture
    def settings(  # type: ignore[override]
        self, secantus_url: str, free_port: int, fake_auth: RunningAuth, dead_amqp_url: str
    ) -> TasksSettings:
        return TasksSettings(
            grpc_port=free_port,
            metrics_port=0,
            mongodb_url=secantus_url,
            mongodb_database_prefix=f"test_{uuid.uuid4().hex[:12]}_",
            auth_grpc_target=fake_auth.target,
            amqp_url=dead_amqp_url,
            max_upload_bytes=MAX_UPLOAD,
            assignee_check_timeout_s=1.0,
            shutdown_grace_s=1.0,
        )

    @pytest.fixture
    def stub(self, channel: grpc.aio.Channel) -> tasks_pb2_grpc.TasksServiceStub:
        return tasks_pb2_grpc.TasksServiceStub(channel)

    @pytest.fixture
    async def database(self, settings: TasksSettings) -> AsyncIterator[Any]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongodb_url.get_secret_value(), tz_aware=True
        )
        yield client[settings.mongodb_database]
        await client.close()

    @pytest.fixture
    def owner(self, fake_auth: RunningAuth) -> str:
        user_id = new_user_id()
        fake_auth.fake.users[user_id] = True
        return user_id

    @pytest.fixture
    def assignee(self, fake_auth: RunningAuth) -> str:
        user_id = new_user_id()
        fake_auth.fake.users[user_id] = True
        return user_id

    async def create(
        self, stub: tasks_pb2_grpc.TasksServiceStub, user_id: str, **fields: Any
    ) -> tasks_pb2.Task:
        fields.setdefault("title", "Write the report")
        request = tasks_pb2.CreateTaskRequest(task=tasks_pb2.TaskInput(**fields))
        task: tasks_pb2.Task = await stub.CreateTask(request, metadata=as_user(user_id), timeout=5)
        return task

    # --- the service ------------------------------------------------------------------------

    async def test_list_indexes_exist_after_start_up(
        self, settings: TasksSettings, channel: grpc.aio.Channel
    ) -> None:
        expected = [
            ExpectedIndex([(branch, 1), (key, direction), ("_id", direction)])
            for branch in ("owner_id", "assignee_id")
            for key, direction in (
                ("created_at", -1),
                ("due_key", 1),
                ("priority", -1),
                ("updated_at", -1),
            )
        ]
        await assert_indexes_exist(settings, "tasks", expected)

    async def test_every_rpc_is_implemented(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str
    ) -> None:
        metadata = as_user(owner)
        calls = {
            "CreateTask": stub.CreateTask(tasks_pb2.CreateTaskRequest(), metadata=metadata),
            "GetTask": stub.GetTask(tasks_pb2.GetTaskRequest(), metadata=metadata),
            "ListTasks": stub.ListTasks(tasks_pb2.ListTasksRequest(), metadata=metadata),
            "UpdateTask": stub.UpdateTask(tasks_pb2.UpdateTaskRequest(), metadata=metadata),
            "ReplaceTask": stub.ReplaceTask(tasks_pb2.ReplaceTaskRequest(), metadata=metadata),
            "DeleteTask": stub.DeleteTask(tasks_pb2.DeleteTaskRequest(), metadata=metadata),
            "UploadAttachment": stub.UploadAttachment(iter(upload_requests("")), metadata=metadata),
            "ListAttachments": stub.ListAttachments(
                tasks_pb2.ListAttachmentsRequest(), metadata=metadata
            ),
            "DownloadAttachment": _drain(
                stub.DownloadAttachment(tasks_pb2.DownloadAttachmentRequest(), metadata=metadata)
            ),
            "DeleteAttachment": stub.DeleteAttachment(
                tasks_pb2.DeleteAttachmentRequest(), metadata=metadata
            ),
        }
        codes = {}
        for name, call in calls.items():
            try:
                await call
                codes[name] = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                codes[name] = error.code()

        service = tasks_pb2.DESCRIPTOR.services_by_name["TasksService"]
        assert set(codes) == {method.name for method in service.methods}
        assert grpc.StatusCode.UNIMPLEMENTED not in codes.values(), codes

    async def test_anonymous_callers_are_unauthenticated(
        self, stub: tasks_pb2_grpc.TasksServiceStub
    ) -> None:
        call = stub.ListTasks(tasks_pb2.ListTasksRequest(), timeout=5)
        assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED

    # --- tasks ------------------------------------------------------------------------------

    async def test_create_then_get_with_affected_users_in_the_trailer(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str, assignee: str
    ) -> None:
        call = stub.CreateTask(
            tasks_pb2.CreateTaskRequest(
                task=tasks_pb2.TaskInput(
                    title="  Plan  ", tags=["Work", "work"], assignee_id=assignee
                )
            ),
            metadata=as_user(owner),
            timeout=5,
        )
        created = await call
        trailer = dict(await call.trailing_metadata())

        fetched = await stub.GetTask(
            tasks_pb2.GetTaskRequest(task_id=created.id), metadata=as_user(assignee), timeout=5
        )

        assert (fetched.title, list(fetched.tags), fetched.version) == ("Plan", ["work"], 1)
        assert (fetched.owner_id, fetched.assignee_id) == (owner, assignee)
        assert set(trailer[AFFECTED_USERS_KEY].split(",")) == {owner, assignee}

    async def test_assignee_is_checked_with_auth_forwarding_the_callers_token(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str, fake_auth: RunningAuth
    ) -> None:
        inactive, unknown = new_user_id(), new_user_id()
        fake_auth.fake.users[inactive] = False

        for assignee_id in (inactive, unknown):
            call = self.create(stub, owner, assignee_id=assignee_id)
            assert await code_of(call) == grpc.StatusCode.INVALID_ARGUMENT
        assert all(value.startswith("Bearer ") for value in fake_auth.fake.authorizations)

    async def test_auth_down_makes_assignment_unavailable(
        self,
        stub: tasks_pb2_grpc.TasksServiceStub,
        owner: str,
        assignee: str,
        fake_auth: RunningAuth,
    ) -> None:
        await fake_auth.server.stop(0)

        call = self.create(stub, owner, assignee_id=assignee)

        assert await code_of(call) == grpc.StatusCode.UNAVAILABLE
        page = await stub.ListTasks(tasks_pb2.ListTasksRequest(), metadata=as_user(owner))
        assert list(page.tasks) == []

    async def test_another_users_task_is_not_found_on_every_verb(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str
    ) -> None:
        task = await self.create(stub, owner)
        attachment = await stub.UploadAttachment(
            iter(upload_requests(task.id, b"secret")), metadata=as_user(owner), timeout=5
        )
        stranger = as_user(new_user_id())
        task_input = tasks_pb2.TaskInput(title="Mine now")
        calls = [
            stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task.id), metadata=stranger),
            stub.UpdateTask(
                tasks_pb2.UpdateTaskRequest(
                    task_id=task.id, task=task_input, update_mask=FieldMask(paths=["title"])
                ),
                metadata=stranger,
            ),
            stub.ReplaceTask(
                tasks_pb2.ReplaceTaskRequest(task_id=task.id, task=task_input), metadata=stranger
            ),
            stub.DeleteTask(tasks_pb2.DeleteTaskRequest(task_id=task.id), metadata=stranger),
            stub.UploadAttachment(iter(upload_requests(task.id, b"x")), metadata=stranger),
            stub.ListAttachments(
                tasks_pb2.ListAttachmentsRequest(task_id=task.id), metadata=stranger
            ),
            _drain(
                stub.DownloadAttachment(
                    tasks_pb2.DownloadAttachmentRequest(
                        task_id=task.id, attachment_id=attachment.id
                    ),
                    metadata=stranger,
                )
            ),
            stub.DeleteAttachment(
                tasks_pb2.DeleteAttachmentRequest(task_id=task.id, attachment_id=attachment.id),
                metadata=stranger,
            ),
        ]
        codes = [await code_of(call) for call in calls]
        listed = await stub.ListTasks(tasks_pb2.ListTasksRequest(), metadata=stranger)

        assert set(codes) == {grpc.StatusCode.NOT_FOUND}
        assert list(listed.tasks) == []
        unchanged = await stub.GetTask(
            tasks_pb2.GetTaskRequest(task_id=task.id), metadata=as_user(owner)
        )
        assert unchanged.version == 1

    async def test_assignee_may_change_status_only(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str, assignee: str
    ) -> None:
        task = await self.create(stub, owner, assignee_id=assignee)
        metadata = as_user(assignee)

        done = await stub.UpdateTask(
            tasks_pb2.UpdateTaskRequest(
                task_id=task.id,
                task=tasks_pb2.TaskInput(status=tasks_pb2.STATUS_DONE),
                update_mask=FieldMask(paths=["status"]),
            ),
            metadata=metadata,
        )
        rename = stub.UpdateTask(
            tasks_pb2.UpdateTaskRequest(
                task_id=task.id,
                task=tasks_pb2.TaskInput(title="Renamed"),
                update_mask=FieldMask(paths=["title"]),
            ),
            metadata=metadata,
        )
        delete = stub.DeleteTask(tasks_pb2.DeleteTaskRequest(task_id=task.id), metadata=metadata)

        assert (done.status, done.version, done.HasField("completed_at")) == (
            tasks_pb2.STATUS_DONE,
            2,
            True,
        )
        assert await code_of(rename) == grpc.StatusCode.PERMISSION_DENIED
        assert await code_of(delete) == grpc.StatusCode.PERMISSION_DENIED

    async def test_two_concurrent_updates_of_one_version_exactly_one_wins(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str
    ) -> None:
        task = await self.create(stub, owner)

        async def rename(title: str) -> grpc.StatusCode:
            request = tasks_pb2.UpdateTaskRequest(
                task_id=task.id,
                task=tasks_pb2.TaskInput(title=title),
                update_mask=FieldMask(paths=["title"]),
                expected_version=1,
            )
            try:
                await stub.UpdateTask(request, metadata=as_user(owner), timeout=10)
            except grpc.aio.AioRpcError as error:
                return error.code()
            return grpc.StatusCode.OK

        codes = await asyncio.gather(*(rename(f"title {i}") for i in range(4)))
        final = await stub.GetTask(
            tasks_pb2.GetTaskRequest(task_id=task.id), metadata=as_user(owner)
        )

        assert sorted(code.name for code in codes) == ["FAILED_PRECONDITION"] * 3 + ["OK"]
        assert final.version == 2

    async def test_stale_version_is_failed_precondition_and_changes_nothing(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str
    ) -> None:
        task = await self.create(stub, owner)
        replace = stub.ReplaceTask(
            tasks_pb2.ReplaceTaskRequest(
                task_id=task.id, task=tasks_pb2.TaskInput(title="New"), expected_version=7
            ),
            metadata=as_user(owner),
        )

        assert await code_of(replace) == grpc.StatusCode.FAILED_PRECONDITION
        unchanged = await stub.GetTask(
            tasks_pb2.GetTaskRequest(task_id=task.id), metadata=as_user(owner)
        )
        assert (unchanged.title, unchanged.version) == (task.title, 1)

    async def test_events_are_written_to_the_outbox_with_the_change(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str, assignee: str, database: Any
    ) -> None:
        task = await self.create(stub, owner, assignee_id=assignee)
        await stub.UpdateTask(
            tasks_pb2.UpdateTaskRequest(
                task_id=task.id,
                task=tasks_pb2.TaskInput(status=tasks_pb2.STATUS_DONE),
                update_mask=FieldMask(paths=["status"]),
            ),
            metadata=as_user(assignee),
        )
        await stub.DeleteTask(tasks_pb2.DeleteTaskRequest(task_id=task.id), metadata=as_user(owner))

        records = await database.outbox.find({"subject": task.id}).to_list()
        events = [decode_event(bytes(record["body"])) for record in records]
        types = sorted(event.type for event in events)
        deleted = next(event.payload for event in events if event.type == "task.deleted")

        assert types == sorted(
            ["task.created", "task.assigned", "task.updated", "task.completed", "task.deleted"]
        )
        assert (deleted.owner_id, deleted.assignee_id) == (owner, assignee)

    # --- lists ------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "sort",
        [tasks_pb2.SORT_CREATED_AT_ASC, tasks_pb2.SORT_PRIORITY_DESC, tasks_pb2.SORT_DUE_AT_ASC],
    )
    async def test_cursor_walk_with_inserts_and_deletes_sees_every_task_once(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str, assignee: str, sort: int
    ) -> None:
        originals = []
        for i in range(14):
            fields: dict[str, Any] = {"priority": 1 + i % 2}
            if i % 3:
                fields["due_at"] = _timestamp(1_900_000_000 + (i % 4) * 3600)
            if i % 2:
                fields["assignee_id"] = assignee
            originals.append((await self.create(stub, owner, **fields)).id)
        doomed = await self.create(stub, owner, title="deleted midway")
        seen: list[str] = []
        cursor = ""
        pages = 0
        while True:
            page = await stub.ListTasks(
                tasks_pb2.ListTasksRequest(
                    page=common_pb2.PageRequest(limit=4, cursor=cursor), sort=sort
                ),
                metadata=as_user(owner),
            )
            seen.extend(task.id for task in page.tasks)
            pages += 1
            if pages == 2:
                await self.create(stub, owner, title="inserted midway", priority=2)
                await stub.DeleteTask(
                    tasks_pb2.DeleteTaskRequest(task_id=doomed.id), metadata=as_user(owner)
                )
            if not page.page.next_cursor:
                break
            cursor = page.page.next_cursor

        assert sorted(task_id for task_id in seen if task_id in originals) == sorted(originals)
        assert len(seen) == len(set(seen))

    async def test_search_is_literal_and_case_insensitive(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str
    ) -> None:
        match = await self.create(stub, owner, title="Fix (a+b).* parser")
        await self.create(stub, owner, title="Fix ab parser", description="(A+B).*X")
        await self.create(stub, owner, title="Unrelated")

        found = await stub.ListTasks(
            tasks_pb2.ListTasksRequest(q="(A+B).* PARSER"), metadata=as_user(owner)
        )

        assert [task.id for task in found.tasks] == [match.id]

    async def test_malformed_cursor_is_invalid_argument(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str
    ) -> None:
        call = stub.ListTasks(
            tasks_pb2.ListTasksRequest(page=common_pb2.PageRequest(cursor="eyJ2IjoxfQ")),
            metadata=as_user(owner),
        )
        assert await code_of(call) == grpc.StatusCode.INVALID_ARGUMENT

    @pytest.mark.parametrize("scope", [Scope.OWNED, Scope.ASSIGNED])
    @pytest.mark.parametrize("sort", list(SortOrder))
    async def test_first_page_is_served_by_an_index(
        self, database: Any, owner: str, assignee: str, scope: Scope, sort: SortOrder
    ) -> None:
        store = MongoTaskStore(database, Outbox(database, source="taskmesh/tasks"))
        await ensure_indexes(database, INDEXES)
        await _fill(database, owner, assignee, others=300)
        user = owner if scope is Scope.OWNED else assignee

        plans = await store.explain_page(ListQuery(Viewer(user), scope=scope, sort=sort))

        stages = [_stages(plan) for plan in plans]
        assert stages
        assert all("IXSCAN" in found and "COLLSCAN" not in found for found in stages)

    # --- attachments ------------------------------------------------------------------------

    async def test_upload_streams_hashes_and_downloads_in_chunks(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str, assignee: str
    ) -> None:
        task = await self.create(stub, owner, assignee_id=assignee)
        content = bytes(range(256)) * 3
        call = stub.UploadAttachment(
            iter(upload_requests(task.id, content[:500], content[500:], filename="../../x.bin")),
            metadata=as_user(owner),
            timeout=5,
        )
        attachment = await call
        trailer = dict(await call.trailing_metadata())

        responses = [
            response
            async for response in stub.DownloadAttachment(
                tasks_pb2.DownloadAttachmentRequest(task_id=task.id, attachment_id=attachment.id),
                metadata=as_user(assignee),
            )
        ]
        listed = await stub.ListAttachments(
            tasks_pb2.ListAttachmentsRequest(task_id=task.id), metadata=as_user(assignee)
        )

        assert (attachment.size, attachment.sha256, attachment.filename) == (
            768,
            hashlib.sha256(content).hexdigest(),
            "x.bin",
        )
        assert responses[0].metadata == attachment
        assert b"".join(response.chunk for response in responses[1:]) == content
        assert [item.id for item in listed.attachments] == [attachment.id]
        assert set(trailer[AFFECTED_USERS_KEY].split(",")) == {owner, assignee}

    async def test_upload_over_the_limit_is_resource_exhausted_and_stores_nothing(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str, database: Any
    ) -> None:
        task = await self.create(stub, owner)
        chunks = [b"x" * 400] * 3

        call = stub.UploadAttachment(
            iter(upload_requests(task.id, *chunks)), metadata=as_user(owner)
        )

        assert await code_of(call) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await database["attachments.files"].count_documents({}) == 0
        assert await database["attachments.chunks"].count_documents({}) == 0

    async def test_deleting_a_task_deletes_its_attachments(
        self, stub: tasks_pb2_grpc.TasksServiceStub, owner: str, database: Any
    ) -> None:
        task = await self.create(stub, owner)
        await stub.UploadAttachment(iter(upload_requests(task.id, b"abc")), metadata=as_user(owner))

        await stub.DeleteTask(tasks_pb2.DeleteTaskRequest(task_id=task.id), metadata=as_user(owner))

        assert await database["attachments.files"].count_documents({}) == 0
        assert await database["attachments.chunks"].count_documents({}) == 0


async def _drain(call: Any) -> None:
    async for _ in call:
        pass


def _timestamp(seconds: int) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    return Timestamp(seconds=seconds)


def _stages(plan: dict[str, Any]) -> str:
    return json.dumps(plan.get("queryPlanner", {}).get("winningPlan", {}), default=str)


async def _fill(database: Any, owner: str, assignee: str, *, others: int) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    documents = []
    for i in range(others + 40):
        mine = i < 40
        documents.append(
            {
                "owner_id": owner if mine and i % 2 else new_user_id(),
                "assignee_id": assignee if mine and not i % 2 else None,
                "title": f"t{i}",
                "description": "",
                "search": f"t{i}\n",
                "status": "todo",
                "priority": 1 + i % 4,
                "due_at": None,
                "due_key": now + timedelta(hours=i),
                "tags": [],
                "created_at": now - timedelta(seconds=i),
                "updated_at": now,
                "completed_at": None,
                "version": 1,
            }
        )
    await database.tasks.insert_many(documents)
