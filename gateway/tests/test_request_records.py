"""Request records: what is recorded per request, the bounded buffer, and shipping over RabbitMQ.

The recorder is exercised through the app in-process (stand-in stubs, an admission letting
everything in); the shipper with the app's lifespan on the local RabbitMQ, each test on an
events exchange of its own, read through a queue the test binds to it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractQueue
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.events import EventTopology, decode_event
from taskmesh_chassis.events.envelope import CONTENT_TYPE, Event
from taskmesh_chassis.events.topology import declare_exchange
from taskmesh_chassis.identity import Caller
from taskmesh_chassis.testing import find_free_port
from taskmesh_gateway.app import create_app
from taskmesh_gateway.request_records import (
    EVENT_TYPE,
    RecordShipper,
    RequestRecord,
    RequestRecorder,
    RequestRecordingMiddleware,
)
from taskmesh_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import DropConnection, OpenGate

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/14"
RECEIVE_TIMEOUT_S = 10.0


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def records_total(outcome: str) -> float:
    return metric("taskmesh_request_records_total", outcome=outcome)


def a_record(**changes: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "request_id": uuid.uuid4().hex,
        "route": "/api/v1/tasks/{task_id}",
        "method": "GET",
        "status": 200,
        "duration_s": 0.004,
        "time_s": time.time(),
        "user_id": "",
    }
    return RequestRecord(**(fields | changes))


def caller(user_id: str) -> Caller:
    now = time.time()
    return Caller(user_id, "user", uuid.uuid4().hex, uuid.uuid4().hex, now, now + 900, "token")


@pytest.fixture
def recorder(app: FastAPI) -> RequestRecorder:
    """The recorder of the in-process test app."""
    recorder: RequestRecorder = app.state.request_recorder
    return recorder


records_router = APIRouter()
"""Routes to record: outside the API, and under /api/v1 where admission runs."""


@records_router.get("/_records/items/{item_id}")
@records_router.get("/api/v1/_records/items/{item_id}")
async def read_item(item_id: str) -> dict[str, str]:
    """Answer 200 with the id."""
    return {"id": item_id}


@records_router.post("/api/v1/_records/notes", status_code=201)
async def create_note() -> dict[str, str]:
    """Answer 201."""
    return {}


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    """The test app (stand-in stubs, admission letting all in) with the routes above."""
    app.include_router(records_router)
    return app


def held(recorder: RequestRecorder) -> list[RequestRecord]:
    """Take every waiting record off the recorder (as the shipper would)."""
    records = recorder.take_batch()
    recorder.settle(len(records), shipped=True)
    return records


# What one request's record says


async def test_a_record_names_the_route_template_never_the_raw_path(
    client: httpx.AsyncClient, recorder: RequestRecorder
) -> None:
    started = time.time()
    response = await client.get("/_records/items/65f0c0ffee0000000000aaaa")

    [record] = held(recorder)
    assert record.route == "/_records/items/{item_id}"
    assert (record.method, record.status) == ("GET", 200)
    assert record.request_id == response.headers["x-request-id"]
    assert 0 < record.duration_s < 5
    assert started <= record.time_s <= time.time()


async def test_an_anonymous_request_has_no_user(
    client: httpx.AsyncClient, recorder: RequestRecorder
) -> None:
    await client.get("/api/v1/_records/items/t-1")

    [record] = held(recorder)
    assert (record.route, record.user_id) == ("/api/v1/_records/items/{item_id}", "")


async def test_an_admitted_caller_is_the_records_user(
    client: httpx.AsyncClient, recorder: RequestRecorder, open_gate: OpenGate
) -> None:
    open_gate.caller = caller("65f0c0ffee0000000000bbbb")

    await client.post("/api/v1/_records/notes")

    [record] = held(recorder)
    assert (record.route, record.method, record.user_id) == (
        "/api/v1/_records/notes",
        "POST",
        "65f0c0ffee0000000000bbbb",
    )


async def test_a_request_no_route_matched_has_an_empty_route(
    client: httpx.AsyncClient, recorder: RequestRecorder
) -> None:
    await client.get("/api/v1/tasks-that-do-not-exist/42")

    [record] = held(recorder)
    assert (record.route, record.status) == ("", 404)


async def test_an_unknown_method_is_recorded_as_other(
    client: httpx.AsyncClient, recorder: RequestRecorder
) -> None:
    await client.request("BREW", "/_records/items/1")

    [record] = held(recorder)
    assert (record.method, record.status) == ("OTHER", 405)


async def test_a_crash_is_recorded_as_the_500_it_became(
    client: httpx.AsyncClient, recorder: RequestRecorder
) -> None:
    response = await client.get("/_probe/crash")

    [record] = held(recorder)
    assert (response.status_code, record.route, record.status) == (500, "/_probe/crash", 500)
    assert record.request_id == response.headers["x-request-id"]


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/docs", "/docs/swagger-initializer.js"])
async def test_probes_metrics_and_docs_are_not_recorded(
    client: httpx.AsyncClient, recorder: RequestRecorder, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert len(recorder) == 0


# The buffer


def test_recording_is_a_plain_call_that_needs_no_event_loop() -> None:
    recorder = RequestRecorder(capacity=10, batch_size=5)

    assert not inspect.iscoroutinefunction(recorder.record)
    assert recorder.record(a_record()) is True
    assert len(recorder) == 1


def test_a_full_buffer_drops_new_records_and_counts_them() -> None:
    recorder = RequestRecorder(capacity=3, batch_size=10)
    recorded, dropped = records_total("recorded"), records_total("dropped")

    accepted = [recorder.record(a_record(status=200 + index)) for index in range(5)]

    assert accepted == [True, True, True, False, False]
    assert [record.status for record in recorder.take_batch()] == [200, 201, 202]
    assert records_total("recorded") - recorded == 3
    assert records_total("dropped") - dropped == 2


def test_a_batch_being_published_still_counts_towards_the_bound() -> None:
    recorder = RequestRecorder(capacity=3, batch_size=2)
    for _ in range(3):
        recorder.record(a_record())

    taken = recorder.take_batch()

    assert (len(taken), recorder.waiting, len(recorder)) == (2, 1, 3)
    assert recorder.record(a_record()) is False
    recorder.settle(len(taken), shipped=True)
    assert recorder.record(a_record()) is True


def test_a_full_batch_wakes_the_shipper() -> None:
    recorder = RequestRecorder(capacity=10, batch_size=2)

    recorder.record(a_record())
    before = recorder.batch_ready.is_set()
    recorder.record(a_record())

    assert (before, recorder.batch_ready.is_set()) == (False, True)
    recorder.take_batch()
    assert not recorder.batch_ready.is_set()


async def test_requests_are_answered_while_the_buffer_is_full(app: FastAPI) -> None:
    app.state.request_recorder.capacity = 2
    dropped = records_total("dropped")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answers = [await client.get("/_records/items/t-1") for _ in range(5)]

    assert [answer.status_code for answer in answers] == [200] * 5
    assert records_total("dropped") - dropped == 3


def test_recording_can_be_turned_off() -> None:
    app = create_app(GatewaySettings(environment="test", request_recording_enabled=False))

    assert not hasattr(app.state, "request_recorder")
    assert RequestRecordingMiddleware not in [item.cls for item in app.user_middleware]


def test_settings_defaults_and_the_freshness_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = GatewaySettings()
    assert (
        settings.request_recording_enabled,
        settings.request_records_buffer,
        settings.request_records_batch,
        settings.request_records_flush_s,
    ) == (True, 10_000, 500, 1.0)

    monkeypatch.setenv("REQUEST_RECORDS_FLUSH_S", "10")
    with pytest.raises(ValidationError):
        GatewaySettings()


# Metrics


async def test_metrics_expose_records_caches_and_rate_limits(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")

    samples = {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    for outcome in ("recorded", "dropped", "shipped", "failed"):
        assert ("taskmesh_request_records_total", (("outcome", outcome),)) in samples
    assert ("taskmesh_request_records_buffered", ()) in samples
    assert ("taskmesh_request_record_publish_failures_total", ()) in samples
    for cache in ("task_list", "me"):
        for result in ("hit", "miss"):
            labels = (("cache", cache), ("result", result))
            assert ("taskmesh_cache_requests_total", labels) in samples
    for policy in ("user", "ip", "login"):
        assert ("taskmesh_rate_limited_total", (("policy", policy),)) in samples


async def test_the_buffer_gauge_follows_the_records_held(
    client: httpx.AsyncClient, recorder: RequestRecorder
) -> None:
    await client.get("/_records/items/t-1")
    await client.get("/_records/items/t-2")

    assert metric("taskmesh_request_records_buffered") == 2
    held(recorder)
    assert metric("taskmesh_request_records_buffered") == 0


# Shipping over RabbitMQ


@dataclass
class Running:
    """A gateway app with its lifespan running, and a client calling it in-process."""

    app: FastAPI
    client: httpx.AsyncClient
    stack: AsyncExitStack

    @property
    def recorder(self) -> RequestRecorder:
        recorder: RequestRecorder = self.app.state.request_recorder
        return recorder

    @property
    def shipper(self) -> RecordShipper:
        shipper: RecordShipper = self.app.state.request_shipper
        return shipper

    @property
    def instance(self) -> str:
        name: str = self.app.state.settings.instance_name
        return name

    async def connected(self) -> None:
        async with asyncio.timeout(10):
            await self.app.state.broker.connection.connected.wait()

    async def stop(self) -> None:
        """End the lifespan (the shipper's stop) now."""
        await self.stack.aclose()


StartGateway = Callable[..., Awaitable[Running]]


@pytest.fixture
def topology() -> EventTopology:
    return EventTopology(exchange=f"test.records.{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def start_gateway(topology: EventTopology) -> AsyncIterator[StartGateway]:
    """Start gateways with their lifespan on the test's exchange; stop them after the test."""
    started: list[Running] = []

    async def start(**overrides: Any) -> Running:
        settings = GatewaySettings(
            **{
                "environment": "test",
                "instance_name": f"records-test-{uuid.uuid4().hex[:6]}",
                "amqp_url": AMQP_URL,
                "redis_url": REDIS_URL,
                "rate_limit_anon_per_min": 1_000_000,
                "events_exchange": topology.exchange,
                "request_records_flush_s": 0.2,
            }
            | overrides
        )
        app = create_app(settings)
        app.include_router(records_router)
        stack = AsyncExitStack()
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")
        )
        running = Running(app, client, stack)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.stop()


@pytest.fixture
async def batches(topology: EventTopology) -> AsyncIterator[AbstractQueue]:
    """A queue bound to the test's exchange for `gateway.request_records`; the exchange goes
    after the test."""
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange = await declare_exchange(channel, topology)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=EVENT_TYPE)
    yield queue
    await channel.exchange_delete(topology.exchange)
    await connection.close()


async def next_batch(queue: AbstractQueue, *, timeout_s: float = RECEIVE_TIMEOUT_S) -> Any:
    """The next message on the queue (acknowledged), waiting up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            return message
        await asyncio.sleep(0.02)
    pytest.fail(f"no batch within {timeout_s} s")


async def records_received(queue: AbstractQueue, count: int) -> list[events_pb2.RequestRecord]:
    """Read batches until `count` distinct records came (a republished batch counts once)."""
    events: dict[str, Event] = {}
    while sum(len(records_of(event)) for event in events.values()) < count:
        event = decode_event((await next_batch(queue)).body)
        events[event.id] = event
    return [record for event in events.values() for record in records_of(event)]


def records_of(event: Event) -> list[events_pb2.RequestRecord]:
    """The records a `gateway.request_records` event carries."""
    assert isinstance(event.payload, events_pb2.RequestRecordBatch)
    return list(event.payload.records)


async def test_a_batch_arrives_as_an_envelope_carrying_the_records(
    start_gateway: StartGateway, batches: AbstractQueue
) -> None:
    gateway = await start_gateway()
    read = await gateway.client.get("/_records/items/65f0c0ffee0000000000aaaa")
    created = await gateway.client.post("/api/v1/_records/notes")
    missing = await gateway.client.get("/nowhere")

    message = await next_batch(batches)
    event = decode_event(message.body)

    assert (event.type, event.source, event.subject) == (
        "gateway.request_records",
        "taskmesh/gateway",
        gateway.instance,
    )
    assert event.data_schema == "taskmesh.events.v1.RequestRecordBatch"
    assert message.message_id == event.id
    assert (message.type, message.content_type) == (EVENT_TYPE, CONTENT_TYPE)
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    records = records_of(event)
    while len(records) < 3:
        records.extend(records_of(decode_event((await next_batch(batches)).body)))
    assert [(r.route, r.method, r.status) for r in records] == [
        ("/_records/items/{item_id}", "GET", 200),
        ("/api/v1/_records/notes", "POST", 201),
        ("", "GET", 404),
    ]
    assert [r.request_id for r in records] == [
        answer.headers["x-request-id"] for answer in (read, created, missing)
    ]
    assert {(r.instance, r.user_id) for r in records} == {(gateway.instance, "")}
    assert all(r.duration_ms > 0 and r.time.seconds > 0 for r in records)


async def test_a_full_batch_goes_before_the_flush_interval(
    start_gateway: StartGateway, batches: AbstractQueue
) -> None:
    gateway = await start_gateway(request_records_flush_s=5, request_records_batch=3)
    await gateway.connected()
    await asyncio.sleep(0.2)  # the shipper's first wait has begun
    shipped = records_total("shipped")

    for index in range(3):
        await gateway.client.get(f"/_records/items/t-{index}")

    message = await next_batch(batches, timeout_s=4)
    assert len(records_of(decode_event(message.body))) == 3
    await asyncio.sleep(0.05)  # the confirm has been counted
    assert records_total("shipped") - shipped == 3
    assert len(gateway.recorder) == 0


async def test_what_is_held_at_shutdown_is_shipped_before_the_lifespan_ends(
    start_gateway: StartGateway, batches: AbstractQueue
) -> None:
    gateway = await start_gateway(request_records_flush_s=5)
    await gateway.connected()
    await gateway.client.get("/_records/items/t-1")
    await gateway.client.get("/_records/items/t-2")

    await gateway.stop()

    assert len(await records_received(batches, 2)) == 2
    assert len(gateway.recorder) == 0


async def test_with_the_broker_unreachable_requests_pass_and_records_wait_then_drop(
    start_gateway: StartGateway,
) -> None:
    dropped, failed = records_total("dropped"), records_total("failed")
    publish_failures = metric("taskmesh_request_record_publish_failures_total")
    gateway = await start_gateway(
        amqp_url=f"amqp://guest:guest@127.0.0.1:{find_free_port()}/",
        request_records_buffer=5,
    )

    started = time.perf_counter()
    answers = [await gateway.client.get(f"/_records/items/t-{index}") for index in range(8)]
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.5)  # a few flush attempts

    assert [answer.status_code for answer in answers] == [200] * 8
    # Nothing on the request path waits for the broker (a publish would time out after 5 s).
    assert elapsed < 2
    assert len(gateway.recorder) == 5
    assert records_total("dropped") - dropped == 3
    assert metric("taskmesh_request_record_publish_failures_total") > publish_failures

    await gateway.stop()

    assert records_total("failed") - failed == 5
    assert len(gateway.recorder) == 0


async def test_records_made_while_the_connection_is_lost_are_shipped_once_it_is_back(
    start_gateway: StartGateway,
    batches: AbstractQueue,
    drop_broker_connection: DropConnection,
) -> None:
    gateway = await start_gateway()
    await gateway.connected()
    await gateway.client.get("/_records/items/before")
    assert [r.route for r in await records_received(batches, 1)] == ["/_records/items/{item_id}"]

    await drop_broker_connection(f"gateway {gateway.instance}")
    answers = [await gateway.client.get(f"/_records/items/during-{index}") for index in range(3)]

    records = await records_received(batches, 3)
    assert sorted(r.request_id for r in records) == sorted(
        answer.headers["x-request-id"] for answer in answers
    )


async def test_a_batch_that_cannot_be_encoded_is_given_up_on_and_shipping_goes_on(
    start_gateway: StartGateway, batches: AbstractQueue
) -> None:
    gateway = await start_gateway(request_records_batch=1)
    await gateway.connected()
    failed = records_total("failed")

    gateway.recorder.record(a_record(status=2**40))  # beyond the int32 of the contract
    answer = await gateway.client.get("/_records/items/after")

    [record] = await records_received(batches, 1)
    assert record.request_id == answer.headers["x-request-id"]
    assert records_total("failed") - failed == 1
