from __future__ import annotations

import grpc
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh_auth.main import SERVICE
from taskmesh_chassis.settings import GrpcServiceSettings
from taskmesh_chassis.testing import ExpectedIndex, GrpcServiceContract, assert_indexes_exist


class TestAuthService(GrpcServiceContract):
    service = SERVICE
    full_service_name = "taskmesh.auth.v1.AuthService"
    stub_class = auth_pb2_grpc.AuthServiceStub
    unimplemented_rpc = ("GetMe", auth_pb2.GetMeRequest())

    async def test_unique_email_index_exists_after_start_up(
        self, settings: GrpcServiceSettings, channel: grpc.aio.Channel
    ) -> None:
        expected = ExpectedIndex([("email", 1)], unique=True)
        await assert_indexes_exist(settings, "users", [expected])
