"""Process entry point: read settings, configure logging, serve the app with uvicorn."""

from __future__ import annotations

from typing import Any

import uvicorn
from taskmesh_chassis.logging import configure_logging

from taskmesh_gateway.app import create_app
from taskmesh_gateway.settings import GatewaySettings


def server_options(settings: GatewaySettings) -> dict[str, Any]:
    """How uvicorn serves the gateway (tests serve it the same way)."""
    return {
        "host": settings.gateway_host,
        "port": settings.gateway_port,
        "log_config": None,
        "access_log": False,
        # The app applies FORWARDED_ALLOW_IPS itself (create_app).
        "proxy_headers": False,
        "server_header": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": int(settings.shutdown_grace_s),
        # WebSocket heartbeats: a ping every interval; no pong within the timeout closes (1011).
        "ws_ping_interval": settings.ws_ping_interval_s,
        "ws_ping_timeout": settings.ws_ping_timeout_s,
        # Clients have nothing to say on /api/v1/ws; a larger message closes the socket (1009).
        "ws_max_size": settings.ws_max_message_bytes,
    }


def run() -> None:
    """Start the gateway and serve until SIGINT/SIGTERM, then drain in-flight requests."""
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_format)
    uvicorn.run(create_app(settings), **server_options(settings))
