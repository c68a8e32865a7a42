"""Start the whole suite exactly as `make run` does, on free ports and a throw-away data dir."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest
from taskmesh_localrun.testing import LocalRun, delete_event_topology

StartSuite = Callable[..., LocalRun]


@pytest.fixture(scope="session")
def start_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartSuite]:
    """A factory: start_suite(*args, **env) starts a runner on free ports in a fresh dir.

    Each runner gets its own database names and its own events exchange (so its events reach
    only its own consumers, never those of another suite on the same RabbitMQ); every runner
    still going at the end is stopped and its exchange and queues deleted.
    """
    started: list[tuple[LocalRun, str]] = []

    def start(*args: str, **env: str) -> LocalRun:
        tag = secrets.token_hex(4)
        run_env = {
            **os.environ,
            "MONGODB_DATABASE_PREFIX": f"e2e_{tag}_",
            "EVENTS_EXCHANGE": f"e2e.events.{tag}",
            **env,
        }
        run = LocalRun(tmp_path_factory.mktemp("localrun"), ["--free-ports", *args], run_env)
        started.append((run, run_env["EVENTS_EXCHANGE"]))
        return run

    yield start
    for run, exchange in started:
        try:
            run.close()
        finally:
            delete_event_topology(exchange)


SHARED_SUITE_RATE_LIMITS = {
    "RATE_LIMIT_USER_PER_MIN": "100000",
    "RATE_LIMIT_ANON_PER_MIN": "100000",
}
"""Every test calls the shared suite from 127.0.0.1, one anonymous rate-limit partition, so
its limits are lifted; the limits themselves are tested on a suite of their own
(test_auth_security.py), with the contract's defaults."""


@pytest.fixture(scope="session")
def suite(start_suite: StartSuite) -> Iterator[LocalRun]:
    """The whole suite, ready through Traefik, shared by the tests that only read from it.

    Tearing it down is itself checked: Ctrl-C exits 0 and leaves no process behind.
    """
    run = start_suite(**SHARED_SUITE_RATE_LIMITS)
    run.wait_until_readyz()
    yield run
    returncode = run.interrupt()
    survivors = run.survivors()
    run.kill_survivors()
    assert returncode == 0, run.output()
    assert survivors == []
