from __future__ import annotations

from taskmesh.users.v1 import users_pb2, users_pb2_grpc
from taskmesh_chassis.testing import GrpcServiceContract
from taskmesh_users.main import SERVICE


class TestUsersService(GrpcServiceContract):
    service = SERVICE
    full_service_name = "taskmesh.users.v1.UsersService"
    stub_class = users_pb2_grpc.UsersServiceStub
    unimplemented_rpc = ("GetProfile", users_pb2.GetProfileRequest())
