"""Configuration of the tasks service (docs/processes.md, docs/tasks.md)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from taskmesh_chassis.events import EventSettings
from taskmesh_chassis.settings import GrpcServiceSettings, Port


class TasksSettings(GrpcServiceSettings, EventSettings):
    """Settings of the tasks service: the common ones, its ports, limits, account purges."""

    service_name: ClassVar[str] = "tasks"

    grpc_port: Port = 50053
    metrics_port: Port = 9103

    # Largest attachment accepted, in bytes (10 MiB).
    max_upload_bytes: int = Field(default=10_485_760, ge=1)
    # Deadline of the call asking auth whether an assignee exists and is active.
    assignee_check_timeout_s: float = Field(default=2.0, gt=0, le=30)

    # How often the purger looks for account-deletion jobs recorded by other instances or
    # left behind (a job recorded by this instance is started at once).
    user_purge_sweep_s: float = Field(default=5.0, gt=0, le=3600)
    # Tasks deleted, or unassigned, per transaction of an account-deletion purge.
    user_purge_batch: int = Field(default=200, ge=1, le=10_000)
    # Socket timeouts of the Redis client (the purge invalidates the gateway's list cache).
    redis_timeout_s: float = Field(default=2.0, gt=0)
