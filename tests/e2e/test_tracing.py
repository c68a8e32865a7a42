"""One request's trace, end to end: Traefik, a gateway, the tasks service, the relay, and the
notifications service's consumer.

The request creates a task assigned to another user, so the tasks service emits
`task.assigned` and the notifications service acts on it. It is sent with a known W3C
`traceparent`, which every hop continues.

- On the shared suite (started as `make run`, no OTLP endpoint): that trace id is in the
  JSON log lines of the gateway, the tasks service and the notifications consumer.
- On a suite of this module, started with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an
  in-process OTLP receiver (a stand-in collector): the spans of Traefik, the gateway, the
  tasks service and the notifications service arrive with that trace id, parent to child.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from taskmesh_chassis.testing import OtlpReceiver, ReceivedSpan, serving_otlp_receiver
from taskmesh_localrun.testing import TEST_PASSWORD, LocalRun, eventually, json_lines

from .conftest import SHARED_SUITE_RATE_LIMITS, StartSuite

pytestmark = pytest.mark.e2e

TASKS = "/api/v1/tasks"
CREATE_TASK = "taskmesh.tasks.v1.TasksService/CreateTask"
EVENT_TIMEOUT_S = 30.0
"""How long the event's way to the consumer, and a span's way to the collector, may take."""


@dataclass(frozen=True)
class Account:
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class TracedRequest:
    """The assignment request: its trace id, the caller's span id, its request id, the task."""

    trace_id: str
    parent_id: str
    request_id: str
    task_id: str


@dataclass(frozen=True)
class ExportingSuite:
    run: LocalRun
    receiver: OtlpReceiver


@pytest.fixture(scope="module")
def exporting_suite(start_suite: StartSuite) -> Iterator[ExportingSuite]:
    """A suite exporting its spans to a receiver in this process, every 0.2 s."""
    with serving_otlp_receiver() as (receiver, endpoint):
        run = start_suite(
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_BSP_SCHEDULE_DELAY="200",
            **SHARED_SUITE_RATE_LIMITS,
        )
        try:
            run.wait_until_readyz()
            yield ExportingSuite(run, receiver)
        finally:
            # Stopped while the receiver still listens: the last spans are flushed to it.
            run.close()


def register(client: httpx.Client) -> Account:
    email = f"e2e-trace-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post(
        "/api/v1/auth/register", json={"email": email, "password": TEST_PASSWORD, "name": "T"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(body["user"]["id"], body["access_token"])


def assign_a_task_with_a_known_trace(url: str) -> TracedRequest:
    """Create, as one user, a task assigned to another, under a fresh known trace."""
    with httpx.Client(base_url=url, timeout=30) as client:
        owner, assignee = register(client), register(client)
        traced = TracedRequest(
            trace_id=secrets.token_hex(16),
            parent_id=secrets.token_hex(8),
            request_id=f"trace-{uuid.uuid4().hex[:12]}",
            task_id="",
        )
        response = client.post(
            TASKS,
            json={"title": "Follow me", "assignee_id": assignee.id},
            headers={
                **owner.auth,
                "traceparent": f"00-{traced.trace_id}-{traced.parent_id}-01",
                "X-Request-ID": traced.request_id,
            },
        )
    assert response.status_code == 201, response.text
    return TracedRequest(
        traced.trace_id, traced.parent_id, traced.request_id, response.json()["id"]
    )


def lines(run: LocalRun, process: str, trace_id: str) -> list[dict[str, Any]]:
    """The log lines of one process that carry `trace_id`."""
    return [line for line in json_lines(run.log(process)) if line.get("trace_id") == trace_id]


def gateway_lines(run: LocalRun, trace_id: str) -> list[dict[str, Any]]:
    """Such lines of whichever gateway served the request."""
    gateways = [p["name"] for p in run.state["processes"] if p["name"].startswith("gateway-")]
    return [line for name in gateways for line in lines(run, name, trace_id)]


def test_one_requests_trace_id_is_in_the_logs_of_the_gateway_tasks_and_the_consumer(
    suite: LocalRun,
) -> None:
    request = assign_a_task_with_a_known_trace(suite.url)

    def consumed() -> bool:
        return any(
            line.get("event") == "event.processed" and line.get("event_type") == "task.assigned"
            for line in lines(suite, "notifications", request.trace_id)
        )

    assert eventually(consumed, timeout_s=EVENT_TIMEOUT_S), "no consumer line with the trace id"
    [access] = [
        line for line in gateway_lines(suite, request.trace_id) if line["event"] == "http.request"
    ]
    assert (access["method"], access["route"], access["status"]) == ("POST", TASKS, 201)
    assert access["request_id"] == request.request_id
    tasks = lines(suite, "tasks", request.trace_id)
    [handled] = [line for line in tasks if line["event"] == "rpc.handled"]
    assert (handled["method"], handled["code"]) == (f"/{CREATE_TASK}", "OK")
    assert handled["request_id"] == request.request_id
    published = {line["event_type"] for line in tasks if line["event"] == "outbox.published"}
    assert "task.assigned" in published
    [processed] = [
        line
        for line in lines(suite, "notifications", request.trace_id)
        if line["event"] == "event.processed" and line["event_type"] == "task.assigned"
    ]
    assert (processed["subject"], processed["request_id"]) == (request.task_id, request.request_id)
    # Each hop logs under a span of its own, all in the one trace.
    span_ids = {access["span_id"], handled["span_id"], processed["span_id"]}
    assert len(span_ids) == 3
    assert request.parent_id not in span_ids


def test_the_spans_of_every_hop_reach_the_collector_as_one_trace(
    exporting_suite: ExportingSuite,
) -> None:
    request = assign_a_task_with_a_known_trace(exporting_suite.run.url)
    receiver = exporting_suite.receiver

    def trace() -> list[ReceivedSpan]:
        return [span for span in receiver.spans() if span.trace_id == request.trace_id]

    def complete() -> bool:
        names = {(span.service, span.name) for span in trace()}
        return ("taskmesh-notifications", "process task.assigned") in names and any(
            service == "taskmesh-traefik" for service, _ in names
        )

    assert eventually(complete, timeout_s=EVENT_TIMEOUT_S), sorted(
        (span.service, span.name) for span in trace()
    )
    spans = trace()

    def one(service: str, name: str, kind: str) -> ReceivedSpan:
        return only(spans, service, name, kind)

    # Traefik continues the caller's trace and calls a gateway ...
    edge = one("taskmesh-traefik", "POST", "SERVER")
    assert edge.parent_span_id == request.parent_id
    proxy = one("taskmesh-traefik", "ReverseProxy", "CLIENT")
    assert proxy.parent_span_id == edge.span_id
    # ... whose request span calls the tasks service ...
    gateway = one("taskmesh-gateway", f"POST {TASKS}", "SERVER")
    assert gateway.parent_span_id == proxy.span_id
    assert gateway.attributes["http.response.status_code"] == 201
    call = one("taskmesh-gateway", CREATE_TASK, "CLIENT")
    assert call.parent_span_id == gateway.span_id
    create = one("taskmesh-tasks", CREATE_TASK, "SERVER")
    assert create.parent_span_id == call.span_id
    # ... whose relay publishes the event the assignment recorded ...
    publish = one("taskmesh-tasks", "publish task.assigned", "PRODUCER")
    assert publish.parent_span_id == create.span_id
    # ... and the notifications service handles it.
    process = one("taskmesh-notifications", "process task.assigned", "CONSUMER")
    assert process.parent_span_id == publish.span_id
    assert process.attributes["messaging.consumer.group.name"] == "notifications"


def only(spans: list[ReceivedSpan], service: str, name: str, kind: str) -> ReceivedSpan:
    """The one span of `service` called `name` of `kind` in `spans`."""
    matching = [s for s in spans if (s.service, s.name, s.kind) == (service, name, kind)]
    assert len(matching) == 1, (service, name, kind, sorted((s.service, s.name) for s in spans))
    return matching[0]
