"""Each request leaves one access log line; an unexpected error leaves its traceback there only."""

from __future__ import annotations

import httpx
import pytest
from taskmesh_chassis.testing import CapturedLogs, capture_logs


@pytest.fixture
def logs() -> CapturedLogs:
    """Log lines as the gateway writes them (JSON), captured in memory."""
    return capture_logs("gateway")


async def test_access_log_names_route_template_status_and_request_id(
    client: httpx.AsyncClient, logs: CapturedLogs
) -> None:
    await client.get("/_probe/tasks/65f0c0ffee0000000000aaaa", headers={"X-Request-ID": "log-1"})

    [line] = logs.events("http.request")
    assert line["route"] == "/_probe/tasks/{task_id}"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["request_id"] == "log-1"
    assert line["instance"] == "gateway-test"
    assert line["duration_ms"] >= 0


async def test_internal_error_traceback_is_logged_with_the_request_id(
    client: httpx.AsyncClient, logs: CapturedLogs
) -> None:
    await client.get("/_probe/crash", headers={"X-Request-ID": "crash-2"})

    [line] = logs.events("request.unhandled_exception")
    assert line["request_id"] == "crash-2"
    assert "db-7.internal" in line["exception"]
