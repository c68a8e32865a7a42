from __future__ import annotations

import grpc
from taskmesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from taskmesh_chassis.settings import GrpcServiceSettings
from taskmesh_chassis.testing import ExpectedIndex, GrpcServiceContract, assert_indexes_exist
from taskmesh_tasks.main import SERVICE


class TestTasksService(GrpcServiceContract):
    service = SERVICE
    full_service_name = "taskmesh.tasks.v1.TasksService"
    stub_class = tasks_pb2_grpc.TasksServiceStub
    unimplemented_rpc = ("GetTask", tasks_pb2.GetTaskRequest(task_id="665f1c2e9b1e8a0012345678"))

    async def test_owner_listing_index_exists_after_start_up(
        self, settings: GrpcServiceSettings, channel: grpc.aio.Channel
    ) -> None:
        expected = ExpectedIndex([("owner_id", 1), ("created_at", -1)])
        await assert_indexes_exist(settings, "tasks", [expected])
