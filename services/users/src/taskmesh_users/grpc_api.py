"""The gRPC edge of the users service: protobuf messages in, domain calls, messages out.

No RPC is implemented yet: the generated base class answers UNIMPLEMENTED for each one.
"""

from __future__ import annotations

from taskmesh.users.v1 import users_pb2, users_pb2_grpc

SERVICE_NAME: str = users_pb2.DESCRIPTOR.services_by_name["UsersService"].full_name


class UsersServicer(users_pb2_grpc.UsersServiceServicer):  # type: ignore[misc]
    """Serves taskmesh.users.v1.UsersService."""
