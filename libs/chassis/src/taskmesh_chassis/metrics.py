"""Prometheus metrics: the RPC metrics (server and client side) and the `/metrics` endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import Counter, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

# Names and labels follow go-grpc-prometheus, so stock gRPC dashboards work unchanged.
RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
RPC_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time the server took to handle an RPC, by method.",
    ["grpc_service", "grpc_method"],
)
CLIENT_RPC_HANDLED = Counter(
    "grpc_client_handled_total",
    "RPCs this process made that completed, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
CLIENT_RPC_HANDLING_SECONDS = Histogram(
    "grpc_client_handling_seconds",
    "Time from starting an RPC to its completion as this process saw it, by method.",
    ["grpc_service", "grpc_method"],
)

# prometheus_client.start_http_server polls for shutdown every 0.5 s; a service's
# shutdown (and every test that starts one) would wait for that.
_SHUTDOWN_POLL_S = 0.05


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""


@dataclass(frozen=True)
class MetricsServer:
    """A running `/metrics` HTTP endpoint."""

    http_server: ThreadingWSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        """The port it listens on (useful when started on port 0)."""
        return self.http_server.server_port

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.http_server.shutdown()
        self.http_server.server_close()


def start_metrics_server(port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve the default Prometheus registry at http://host:port/metrics from a daemon thread."""
    http_server = make_server(
        host, port, make_wsgi_app(), ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = Thread(
        target=http_server.serve_forever,
        kwargs={"poll_interval": _SHUTDOWN_POLL_S},
        name="metrics-server",
        daemon=True,
    )
    thread.start()
    return MetricsServer(http_server, thread)
