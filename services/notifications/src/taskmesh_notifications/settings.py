"""Configuration of the notifications service (docs/processes.md, docs/notifications.md)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr
from taskmesh_chassis.events import EventSettings
from taskmesh_chassis.settings import GrpcServiceSettings, Port


class NotificationsSettings(GrpcServiceSettings, EventSettings):
    """Settings of the notifications service: the common ones, its ports, events and SMTP."""

    service_name: ClassVar[str] = "notifications"

    grpc_port: Port = 50054
    metrics_port: Port = 9104
    smtp_url: SecretStr = SecretStr("smtp://127.0.0.1:1025")
