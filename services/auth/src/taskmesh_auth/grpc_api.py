"""The gRPC edge of the auth service: protobuf messages in, domain calls, messages out.

No RPC is implemented yet: the generated base class answers UNIMPLEMENTED for each one.
"""

from __future__ import annotations

from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc

SERVICE_NAME: str = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    """Serves taskmesh.auth.v1.AuthService."""
