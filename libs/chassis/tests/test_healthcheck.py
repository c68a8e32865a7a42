"""The images' HEALTHCHECK command against real gRPC and HTTP servers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from taskmesh_chassis.grpc_server import GrpcServer
from taskmesh_chassis.healthcheck import main, probe_host
from taskmesh_chassis.testing import find_free_port


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/healthz" else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
async def grpc_server() -> AsyncIterator[GrpcServer]:
    server = GrpcServer([], host="127.0.0.1", port=0)
    await server.start()
    yield server
    await server.stop(0)


async def test_a_serving_grpc_server_is_healthy(grpc_server: GrpcServer) -> None:
    environ = {"GRPC_HOST": "0.0.0.0", "GRPC_PORT": str(grpc_server.port)}

    assert await asyncio.to_thread(main, [], environ) == 0


async def test_a_grpc_server_shutting_down_is_unhealthy(
    grpc_server: GrpcServer, capsys: pytest.CaptureFixture[str]
) -> None:
    port = grpc_server.port
    await grpc_server.health.enter_graceful_shutdown()

    assert await asyncio.to_thread(main, [], {"GRPC_PORT": str(port)}) == 1
    assert "NOT_SERVING" in capsys.readouterr().err


def test_nothing_listening_is_unhealthy_within_the_deadline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()

    assert main(["--timeout", "1"], {"GRPC_PORT": str(find_free_port())}) == 1
    assert time.monotonic() - started < 3
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_a_missing_port_variable_is_unhealthy_not_a_crash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([], {}) == 1
    assert "GRPC_PORT is not set" in capsys.readouterr().err


def test_a_port_that_is_not_a_number_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], {"GRPC_PORT": "grpc"}) == 1
    assert "not a port number" in capsys.readouterr().err


def test_an_http_2xx_is_healthy(http_port: int) -> None:
    argv = ["--http", "/healthz", "--host-variable", "GATEWAY_HOST"]
    argv += ["--port-variable", "GATEWAY_PORT"]

    assert main(argv, {"GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": str(http_port)}) == 0


def test_an_http_error_status_is_unhealthy(
    http_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--http", "/readyz", "--port-variable", "GATEWAY_PORT"]

    assert main(argv, {"GATEWAY_PORT": str(http_port)}) == 1
    assert "503" in capsys.readouterr().err


def test_usage_errors_exit_1_because_docker_reserves_2() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--no-such-option"], {"GRPC_PORT": "50051"})

    assert exited.value.code == 1


def test_a_specific_listening_address_is_probed_and_a_wildcard_is_loopback() -> None:
    assert probe_host({"GRPC_HOST": "10.1.2.3"}, "GRPC_HOST") == "10.1.2.3"
    assert probe_host({"GRPC_HOST": "[::1]"}, "GRPC_HOST") == "::1"
    for wildcard in ("0.0.0.0", "::", ""):
        assert probe_host({"GRPC_HOST": wildcard}, "GRPC_HOST") == "127.0.0.1"
    assert probe_host({}, "GRPC_HOST") == "127.0.0.1"


async def test_the_module_runs_as_the_image_runs_it(grpc_server: GrpcServer) -> None:
    command = [sys.executable, "-m", "taskmesh_chassis.healthcheck"]
    environ = {"GRPC_PORT": str(grpc_server.port), "PATH": ""}

    done = await asyncio.to_thread(
        subprocess.run, command, env=environ, capture_output=True, text=True, timeout=30
    )

    assert done.returncode == 0, done.stderr
