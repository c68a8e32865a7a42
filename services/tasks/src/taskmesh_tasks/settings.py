"""Configuration of the tasks service (docs/processes.md)."""

from __future__ import annotations

from typing import ClassVar

from taskmesh_chassis.settings import GrpcServiceSettings, Port


class TasksSettings(GrpcServiceSettings):
    """Settings of the tasks service: the common ones, with its own ports."""

    service_name: ClassVar[str] = "tasks"

    grpc_port: Port = 50053
    metrics_port: Port = 9103
