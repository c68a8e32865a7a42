"""Configuration of the notifications service (docs/processes.md, docs/notifications.md)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from taskmesh_chassis.events import EventSettings
from taskmesh_chassis.settings import GrpcServiceSettings, Port

from taskmesh_notifications.mail.settings import MailSettings


class NotificationsSettings(GrpcServiceSettings, EventSettings, MailSettings):
    """Settings of the notifications service: common ones, ports, events, email, reminders."""

    service_name: ClassVar[str] = "notifications"

    grpc_port: Port = 50054
    metrics_port: Port = 9104

    # How often the scheduler looks for tasks due soon.
    reminder_scan_interval_s: float = Field(default=60.0, gt=0, le=3600)
    # How long before a task's due date its people are reminded.
    reminder_lead_s: float = Field(default=86400.0, gt=0, le=30 * 86400)
    # Tasks reminded of per scan at most; a full scan is followed by the next at once.
    reminder_batch: int = Field(default=100, ge=1, le=1000)
