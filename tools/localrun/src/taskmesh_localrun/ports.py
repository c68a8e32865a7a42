"""The default local ports (docs/processes.md) and how to find free ones."""

from __future__ import annotations

import errno
import socket

LOCAL_HOST = "127.0.0.1"

DEFAULT_PUBLIC_PORT = 8000
DEFAULT_TRAEFIK_API_PORT = 8080
DEFAULT_GATEWAY_BASE_PORT = 8000  # gateway-1 on 8001, gateway-2 on 8002, ...
DEFAULT_WEB_PORT = 8090  # the web app's static server, behind Traefik
DEFAULT_MONGO_PORT = 27027
DEFAULT_SMTP_PORT = 1025

DEFAULT_GRPC_PORTS = {
    "auth": 50051,
    "users": 50052,
    "tasks": 50053,
    "notifications": 50054,
    "analytics": 50055,
}
DEFAULT_METRICS_PORTS = {
    "auth": 9101,
    "users": 9102,
    "tasks": 9103,
    "notifications": 9104,
    "analytics": 9105,
}
EXTRA_INSTANCE_PORT_STEP = 100
"""Instance k of a service (`--instances`) listens on its defaults + (k - 1) x this:
notifications-2 on gRPC 50154 and metrics 9204."""


def is_port_free(port: int, host: str = LOCAL_HOST) -> bool:
    """Whether a server could listen on host:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers set SO_REUSEADDR too; without it a TIME_WAIT left by the last run
        # would look like a taken port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            probe.listen(1)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def is_port_listening(port: int, host: str = LOCAL_HOST, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class PortPicker:
    """Hands out ports: the given default, or with free_ports an unused ephemeral one."""

    def __init__(self, *, free_ports: bool) -> None:
        self._free_ports = free_ports
        self._handed_out: set[int] = set()

    def pick(self, default: int) -> int:
        """The port to use where the default would be `default`."""
        port = self._free_port() if self._free_ports else default
        self._handed_out.add(port)
        return port

    def _free_port(self) -> int:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((LOCAL_HOST, 0))
                port: int = probe.getsockname()[1]
            if port not in self._handed_out:
                return port
