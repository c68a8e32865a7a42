"""`python -m taskmesh_chassis.healthcheck`: the container images' HEALTHCHECK command.

Asks the process in the same container whether it is healthy, within a short deadline, and
exits 0 if it is, 1 if not (the reason on stderr, which Docker keeps with the health
status). Exit code 2 means "reserved" to Docker, so usage errors exit 1 too.

    python -m taskmesh_chassis.healthcheck
        gRPC health (grpc.health.v1, the server as a whole) of GRPC_HOST:GRPC_PORT
    python -m taskmesh_chassis.healthcheck --http /healthz \\
            --host-variable GATEWAY_HOST --port-variable GATEWAY_PORT
        HTTP GET of that path; any 2xx answer is healthy

The address is read from the same variables the process listens on; a wildcard host
(`0.0.0.0`, `::`) or none means the loopback address.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import NoReturn

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_TIMEOUT_S = 2.0
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 - names, never bound
LOOPBACK = "127.0.0.1"


class Unhealthy(Exception):
    """The process did not answer healthy; the message says why."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m taskmesh_chassis.healthcheck",
        description="Exit 0 if the process in this container answers healthy, 1 if not.",
    )
    parser.add_argument(
        "--http",
        metavar="PATH",
        help="check with an HTTP GET of PATH instead of the gRPC health service",
    )
    parser.add_argument(
        "--host-variable",
        default="GRPC_HOST",
        metavar="NAME",
        help="environment variable naming the address the process listens on (GRPC_HOST)",
    )
    parser.add_argument(
        "--port-variable",
        default="GRPC_PORT",
        metavar="NAME",
        help="environment variable holding the port the process listens on (GRPC_PORT)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"deadline of the check ({DEFAULT_TIMEOUT_S:g})",
    )
    return parser


def probe_host(environ: Mapping[str, str], variable: str) -> str:
    """The address to probe: the listening address, or the loopback one for a wildcard."""
    host = environ.get(variable, "").strip()
    if host in WILDCARD_HOSTS:
        return LOOPBACK
    return host.removeprefix("[").removesuffix("]")


def probe_port(environ: Mapping[str, str], variable: str) -> int:
    """The port in `variable`; Unhealthy when it is unset or not a port number."""
    value = environ.get(variable, "").strip()
    if not value:
        raise Unhealthy(f"{variable} is not set: no port to check")
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise Unhealthy(f"{variable}={value!r} is not a port number")
    return int(value)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_grpc(host: str, port: int, timeout_s: float) -> None:
    """Ask the gRPC health service whether the server as a whole is SERVING."""
    target = _authority(host, port)
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError as error:
            code = error.code().name if isinstance(error, grpc.Call) else "error"
            raise Unhealthy(f"gRPC health of {target}: {code}") from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise Unhealthy(f"gRPC health of {target}: {status}")


def check_http(host: str, port: int, path: str, timeout_s: float) -> None:
    """GET `path`; anything but a 2xx answer within the deadline is unhealthy."""
    if not path.startswith("/"):
        raise Unhealthy(f"--http needs an absolute path, not {path!r}")
    url = f"http://{_authority(host, port)}{path}"
    try:
        # The URL is http:// to this container's own listener, built above.
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status: int = response.status
    except urllib.error.HTTPError as error:
        raise Unhealthy(f"GET {url}: {error.code}") from None
    except (OSError, ValueError) as error:
        raise Unhealthy(f"GET {url}: {error}") from None
    if not 200 <= status < 300:
        raise Unhealthy(f"GET {url}: {status}")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the check the arguments describe; return the exit code (0 healthy, 1 not)."""
    args = _parser().parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        host = probe_host(env, args.host_variable)
        port = probe_port(env, args.port_variable)
        if args.http is None:
            check_grpc(host, port, args.timeout)
        else:
            check_http(host, port, args.http, args.timeout)
    except Unhealthy as reason:
        sys.stderr.write(f"unhealthy: {reason}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
