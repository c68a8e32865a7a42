"""Configuration of the auth service (docs/processes.md)."""

from __future__ import annotations

from typing import ClassVar

from taskmesh_chassis.settings import GrpcServiceSettings, Port


class AuthSettings(GrpcServiceSettings):
    """Settings of the auth service: the common ones, with its own ports."""

    service_name: ClassVar[str] = "auth"

    grpc_port: Port = 50051
    metrics_port: Port = 9101
