"""Configuration of the users service (docs/processes.md, docs/users.md)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from taskmesh_chassis.events import EventSettings
from taskmesh_chassis.settings import GrpcServiceSettings, Port


class UsersSettings(GrpcServiceSettings, EventSettings):
    """Settings of the users service: the common ones, its ports, the deadline of auth calls."""

    service_name: ClassVar[str] = "users"

    grpc_port: Port = 50052
    metrics_port: Port = 9102

    # Deadline of AuthService.GetUser, asked by CreateProfile for the caller's account.
    auth_timeout_s: float = Field(default=2.0, gt=0, le=30)
