"""Configuration of the analytics service (docs/processes.md)."""

from __future__ import annotations

from typing import ClassVar

from taskmesh_chassis.settings import GrpcServiceSettings, Port


class AnalyticsSettings(GrpcServiceSettings):
    """Settings of the analytics service: the common ones, with its own ports."""

    service_name: ClassVar[str] = "analytics"

    grpc_port: Port = 50055
    metrics_port: Port = 9105
