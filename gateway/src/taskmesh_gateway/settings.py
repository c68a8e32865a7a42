"""The gateway's configuration: one settings object, read from the environment once at start-up."""

from __future__ import annotations

import socket
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode
from taskmesh_chassis.events import EventSettings
from taskmesh_chassis.settings import IdentitySettings


def _default_instance_name(data: dict[str, Any]) -> str:
    return f"{socket.gethostname()}:{data.get('gateway_port', 8001)}"


class GatewaySettings(IdentitySettings, EventSettings):
    """Everything the gateway process reads from its environment (see docs/processes.md).

    `AUTH_GRPC_TARGET`, `JWT_ISSUER`, `JWT_AUDIENCE` and `JWT_LEEWAY_S` come from the chassis'
    IdentitySettings, which the services read too; `EVENTS_EXCHANGE` (the exchange the
    WebSocket push consumes) from its EventSettings.
    """

    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8001, ge=1, le=65535)
    instance_name: str = Field(
        default_factory=_default_instance_name,
        description="Names this instance in log lines (host name:port by default)",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-For names the client (comma-separated IPs, "
        "CIDRs, or *)",
    )

    users_grpc_target: str = "127.0.0.1:50052"
    tasks_grpc_target: str = "127.0.0.1:50053"
    notifications_grpc_target: str = "127.0.0.1:50054"
    analytics_grpc_target: str = "127.0.0.1:50055"
    grpc_deadline_s: float = Field(default=5.0, gt=0)

    # URLs are secrets because they may carry credentials.
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    redis_timeout_s: float = Field(default=2.0, gt=0)
    redis_max_connections: int = Field(default=64, ge=1)
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_tls: bool = False
    readiness_timeout_s: float = Field(default=1.5, gt=0)
    shutdown_grace_s: float = Field(default=10.0, ge=0)

    rate_limit_user_per_min: int = Field(default=100, ge=1)
    rate_limit_anon_per_min: int = Field(default=20, ge=1)
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_s: int = Field(default=900, ge=1)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1)

    # GET /api/v1/ws (docs/gateway.md, "Real-time").
    ws_ping_interval_s: float = Field(default=20.0, gt=0)
    ws_ping_timeout_s: float = Field(default=20.0, gt=0)
    ws_max_message_bytes: int = Field(default=4096, ge=1)
    ws_send_queue_size: int = Field(default=256, ge=1)
    ws_revocation_check_interval_s: float = Field(default=1.0, gt=0)
    ws_revocation_grace_s: float = Field(default=10.0, gt=0)

    # Request records for analytics (docs/gateway.md, "Request records").
    request_recording_enabled: bool = True
    request_records_buffer: int = Field(default=10_000, ge=1)
    request_records_batch: int = Field(default=500, ge=1)
    request_records_flush_s: float = Field(default=1.0, gt=0, le=5)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    def grpc_targets(self) -> dict[str, str]:
        """The address of each service, keyed by service name."""
        return {
            "auth": self.auth_grpc_target,
            "users": self.users_grpc_target,
            "tasks": self.tasks_grpc_target,
            "notifications": self.notifications_grpc_target,
            "analytics": self.analytics_grpc_target,
        }
