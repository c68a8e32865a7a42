"""The command line of `python -m taskmesh_localrun`."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("auth", "users", "tasks", "notifications", "analytics")
ONLY_CHOICES = (*SERVICES, "gateway")
DEFAULT_WEB_DIST = Path(__file__).resolve().parents[4] / "web" / "dist"
"""The checkout's web build (`make web`): this package runs from the workspace it is in."""


@dataclass(frozen=True)
class RunOptions:
    """What the user asked the runner to do."""

    only: str | None = None
    data_dir: Path = Path(".data")
    free_ports: bool = False
    gateways: int = 2
    instances: Mapping[str, int] = field(default_factory=dict)
    """How many instances of a service run (absent: one); the extra ones are named
    `<service>-2`, `<service>-3`, ..."""
    ready_timeout_s: float = 60.0
    web: bool = True
    """Serve the web app at the public URL's `/` (a full run only)."""
    web_dist: Path = DEFAULT_WEB_DIST
    """The built web app that is served."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _service_instances(text: str) -> tuple[str, int]:
    service, equals, count = text.partition("=")
    if not equals or service not in SERVICES:
        raise argparse.ArgumentTypeError(
            f"expected SERVICE=N with SERVICE one of {', '.join(SERVICES)}, not {text!r}"
        )
    try:
        return service, _positive_int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"N must be a whole number, not {count!r}") from None


def parse_options(argv: Sequence[str] | None = None) -> RunOptions:
    """Parse the command line into RunOptions (argparse exits on bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m taskmesh_localrun",
        description=(
            "Run the taskmesh suite as local processes: embedded MongoDB (SecantusDB) unless "
            "MONGODB_URL is set, a mail catcher unless SMTP_URL is set, the five services, "
            "the gateways, the web app's static server and Traefik at "
            "http://127.0.0.1:$PUBLIC_PORT (8000). "
            "The environment is passed through to every process. Ctrl-C stops everything."
        ),
    )
    parser.add_argument(
        "--only",
        choices=ONLY_CHOICES,
        metavar="NAME",
        help=f"run one of {', '.join(ONLY_CHOICES)} alone, with the infrastructure it needs",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".data"),
        help="where logs, mail, MongoDB data and generated config go (default: .data)",
    )
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help="use free ephemeral ports for everything (the public port too, unless PUBLIC_PORT "
        "is set); for tests and parallel runs",
    )
    parser.add_argument(
        "--gateways",
        type=_positive_int,
        default=2,
        metavar="N",
        help="how many gateway instances Traefik balances over (default: 2)",
    )
    parser.add_argument(
        "--instances",
        type=_service_instances,
        action="append",
        default=[],
        metavar="SERVICE=N",
        help="run N instances of a service (default 1), sharing its database and event "
        "queues; the extra ones are SERVICE-2, ... on ports of their own, and the gateways "
        "call the first; repeatable",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the suite to become ready (default: 60)",
    )
    parser.add_argument(
        "--no-web",
        dest="web",
        action="store_false",
        help="do not serve the web app: only the API behind Traefik (no `make web` needed)",
    )
    parser.add_argument(
        "--web-dist",
        type=Path,
        default=DEFAULT_WEB_DIST,
        metavar="DIR",
        help="the built web app to serve (default: web/dist of this checkout, made by `make web`)",
    )
    args = parser.parse_args(argv)
    instances = dict(args.instances)
    if len(instances) < len(args.instances):
        parser.error("--instances names the same service twice")
    return RunOptions(
        only=args.only,
        data_dir=args.data_dir,
        free_ports=args.free_ports,
        gateways=args.gateways,
        instances=instances,
        ready_timeout_s=args.ready_timeout,
        web=args.web,
        web_dist=args.web_dist,
    )
