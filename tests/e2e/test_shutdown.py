"""Ctrl-C stops the whole suite and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from taskmesh_localrun.testing import LocalRun, port_is_free

pytestmark = pytest.mark.e2e

EVERY_PROCESS = (
    "mongo",
    "mailcatcher",
    "auth",
    "users",
    "tasks",
    "notifications",
    "analytics",
    "gateway-1",
    "gateway-2",
    "web",
    "traefik",
)


def test_ctrl_c_stops_everything_frees_the_public_port_and_exits_0(
    start_suite: Callable[..., LocalRun],
) -> None:
    suite = start_suite()
    suite.wait_until_readyz()
    public_port = suite.process_info("traefik")["ports"]["public"]
    names = sorted(process["name"] for process in suite.state["processes"])
    pids = suite.pids()

    returncode = suite.interrupt()

    assert returncode == 0
    assert suite.survivors() == []
    assert names == sorted(EVERY_PROCESS)
    assert len(pids) == len(EVERY_PROCESS)
    assert port_is_free(public_port)
    assert [port for port in suite.ports() if not port_is_free(port)] == []
    assert suite.state["status"] == "stopped"
