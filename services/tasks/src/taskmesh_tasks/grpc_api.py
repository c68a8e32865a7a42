"""The gRPC edge of the tasks service: protobuf messages in, domain calls, messages out.

No RPC is implemented yet: the generated base class answers UNIMPLEMENTED for each one.
"""

from __future__ import annotations

from taskmesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc

SERVICE_NAME: str = tasks_pb2.DESCRIPTOR.services_by_name["TasksService"].full_name


class TasksServicer(tasks_pb2_grpc.TasksServiceServicer):  # type: ignore[misc]
    """Serves taskmesh.tasks.v1.TasksService."""
