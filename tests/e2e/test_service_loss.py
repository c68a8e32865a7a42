"""A service that dies makes /readyz say so, by name, while the rest keeps running."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import httpx
import pytest
from taskmesh_localrun.testing import LocalRun, eventually, is_alive

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def expendable_suite(start_suite: Callable[..., LocalRun]) -> Iterator[LocalRun]:
    """A suite of its own, since this module breaks it."""
    running = start_suite()
    running.wait_until_readyz()
    yield running
    running.close()


def test_stopping_one_service_turns_readyz_503_naming_it(expendable_suite: LocalRun) -> None:
    suite = expendable_suite
    tasks_pid = suite.process_info("tasks")["pid"]

    os.kill(tasks_pid, signal.SIGTERM)

    assert eventually(lambda: not is_alive(tasks_pid), timeout_s=20)
    responses: list[httpx.Response] = []

    def readyz_is_503() -> bool:
        responses.append(httpx.get(f"{suite.url}/readyz", timeout=10))
        return responses[-1].status_code == 503

    assert eventually(readyz_is_503, timeout_s=20), suite.output()
    problem = responses[-1].json()
    assert "tasks" in problem["detail"]
    assert problem["checks"]["tasks"] != "ok"
    assert problem["checks"]["auth"] == "ok"
    assert suite.process.poll() is None, "the runner keeps running"
