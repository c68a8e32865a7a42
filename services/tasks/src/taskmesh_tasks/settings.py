"""Configuration of the tasks service (docs/processes.md, docs/tasks.md)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from taskmesh_chassis.events import EventSettings
from taskmesh_chassis.settings import GrpcServiceSettings, Port


class TasksSettings(GrpcServiceSettings, EventSettings):
    """Settings of the tasks service: the common ones, its ports, upload and assignee limits."""

    service_name: ClassVar[str] = "tasks"

    grpc_port: Port = 50053
    metrics_port: Port = 9103

    # Largest attachment accepted, in bytes (10 MiB).
    max_upload_bytes: int = Field(default=10_485_760, ge=1)
    # Deadline of the call asking auth whether an assignee exists and is active.
    assignee_check_timeout_s: float = Field(default=2.0, gt=0, le=30)
