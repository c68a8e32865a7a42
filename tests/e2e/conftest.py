"""Start the whole suite exactly as `make run` does, on free ports and a throw-away data dir."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest
from taskmesh_localrun.testing import LocalRun

StartSuite = Callable[..., LocalRun]


@pytest.fixture(scope="session")
def start_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartSuite]:
    """A factory: start_suite(*args, **env) starts a runner on free ports in a fresh dir.

    Each runner gets its own database names; every runner still going at the end is stopped.
    """
    started: list[LocalRun] = []

    def start(*args: str, **env: str) -> LocalRun:
        run_env = {
            **os.environ,
            "MONGODB_DATABASE_PREFIX": f"e2e_{secrets.token_hex(4)}_",
            **env,
        }
        run = LocalRun(tmp_path_factory.mktemp("localrun"), ["--free-ports", *args], run_env)
        started.append(run)
        return run

    yield start
    for run in started:
        run.close()


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
