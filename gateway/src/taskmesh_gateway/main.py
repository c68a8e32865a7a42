"""Process entry point: read settings, configure logging, serve the app with uvicorn."""

from __future__ import annotations

import uvicorn
from taskmesh_chassis.logging import configure_logging

from taskmesh_gateway.app import create_app
from taskmesh_gateway.settings import GatewaySettings


def run() -> None:
    """Start the gateway and serve until SIGINT/SIGTERM, then drain in-flight requests."""
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        # The app applies FORWARDED_ALLOW_IPS itself (create_app).
        proxy_headers=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )
