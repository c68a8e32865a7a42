"""Configuration of the users service (docs/processes.md)."""

from __future__ import annotations

from typing import ClassVar

from taskmesh_chassis.settings import GrpcServiceSettings, Port


class UsersSettings(GrpcServiceSettings):
    """Settings of the users service: the common ones, with its own ports."""

    service_name: ClassVar[str] = "users"

    grpc_port: Port = 50052
    metrics_port: Port = 9102
