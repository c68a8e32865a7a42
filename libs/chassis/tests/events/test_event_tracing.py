"""Traces across the event backbone: outbox, relay and consumer, on the real RabbitMQ."""

from __future__ import annotations

import aio_pika
import pytest
import structlog
from opentelemetry.trace import SpanKind, StatusCode
from pymongo.asynchronous.client_session import AsyncClientSession
from taskmesh_chassis.context import RequestContext, bind_request, current_request
from taskmesh_chassis.events import Event, EventTopology, Outbox, UnprocessableEvent
from taskmesh_chassis.events.envelope import encode_event, new_event
from taskmesh_chassis.testing import (
    capture_logs,
    capture_spans,
    parent_id_hex,
    span_id_hex,
    trace_id_hex,
)
from taskmesh_chassis.tracing import get_tracer

from .support import AMQP_URL, Backbone, Brokers, Database, payload_number

pytestmark = pytest.mark.integration

log = structlog.get_logger("test")
tracer = get_tracer(__name__)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
RECORDING_SPAN_ID = "00f067aa0ba902b7"


async def test_a_trace_goes_from_the_recording_span_through_the_relay_into_the_handler(
    producer_db: Database, consumer_db: Database, brokers: Brokers, backbone: Backbone
) -> None:
    spans = capture_spans()
    logs = capture_logs("test")
    seen: list[RequestContext | None] = []

    async def apply(event: Event, session: AsyncClientSession) -> None:
        seen.append(current_request())
        log.info("effect.applied")

    consumer_broker, _ = await brokers.connect("consumer")
    await backbone.consumer("effects", consumer_db, consumer_broker, {"task.deleted": apply})
    outbox = Outbox(producer_db, source="taskmesh/tasks")
    relay_broker, _ = await brokers.connect("relay")
    await backbone.relay(outbox, relay_broker)

    with tracer.start_as_current_span("request"):
        bind_request(RequestContext("req-7"))
        async with outbox.transaction() as uow:
            await producer_db["tasks"].insert_one({"n": 1}, session=uow.session)
            event = uow.add_event(
                "task.deleted", subject="task-1", payload=payload_number(1, "task-1")
            )

    [consumed] = await spans.wait_for("process task.deleted", timeout_s=15)
    [published] = spans.named("publish task.deleted")
    [request] = spans.named("request")
    trace_id = trace_id_hex(request)
    # The envelope names the span the event was recorded in ...
    assert event.traceparent.split("-")[1:3] == [trace_id, span_id_hex(request)]
    # ... the publish is its child, and the handling the publish's.
    assert (published.kind, parent_id_hex(published)) == (SpanKind.PRODUCER, span_id_hex(request))
    assert (consumed.kind, parent_id_hex(consumed)) == (SpanKind.CONSUMER, span_id_hex(published))
    assert {trace_id_hex(published), trace_id_hex(consumed)} == {trace_id}
    assert consumed.attributes is not None
    assert consumed.attributes["messaging.message.id"] == event.id
    # The handler's request context and log lines name the consumer span, with the request id.
    [context] = seen
    assert context is not None
    assert context.request_id == "req-7"
    assert context.traceparent is not None
    assert context.traceparent.split("-")[1:3] == [trace_id, span_id_hex(consumed)]
    [applied] = logs.events("effect.applied")
    assert (applied["trace_id"], applied["span_id"]) == (trace_id, span_id_hex(consumed))
    [sent] = [line for line in logs.events("outbox.published") if line["event_id"] == event.id]
    assert (sent["trace_id"], sent["span_id"]) == (trace_id, span_id_hex(published))


async def test_a_message_without_trace_headers_is_handled_in_its_envelopes_trace(
    consumer_db: Database, brokers: Brokers, backbone: Backbone, topology: EventTopology
) -> None:
    spans = capture_spans()

    async def apply(event: Event, session: AsyncClientSession) -> None:
        return None

    broker, _ = await brokers.connect("consumer")
    await backbone.consumer("effects", consumer_db, broker, {"task.deleted": apply})
    event = new_event(
        "task.deleted",
        source="taskmesh/test",
        subject="task-2",
        payload=payload_number(2, "task-2"),
        context=RequestContext("req-8", traceparent=f"00-{TRACE_ID}-{RECORDING_SPAN_ID}-01"),
    )
    await publish_plain(topology, encode_event(event), "task.deleted")

    [consumed] = await spans.wait_for("process task.deleted", timeout_s=15)
    assert (trace_id_hex(consumed), parent_id_hex(consumed)) == (TRACE_ID, RECORDING_SPAN_ID)


async def test_a_refused_event_ends_its_consumer_span_in_error(
    consumer_db: Database, brokers: Brokers, backbone: Backbone, topology: EventTopology
) -> None:
    spans = capture_spans()

    async def refuse(event: Event, session: AsyncClientSession) -> None:
        raise UnprocessableEvent("no such task")

    broker, _ = await brokers.connect("consumer")
    await backbone.consumer("effects", consumer_db, broker, {"task.deleted": refuse})
    event = new_event(
        "task.deleted",
        source="taskmesh/test",
        subject="task-3",
        payload=payload_number(3, "task-3"),
        context=RequestContext("req-9"),
    )
    await publish_plain(topology, encode_event(event), "task.deleted")

    [consumed] = await spans.wait_for("process task.deleted", timeout_s=15)
    assert consumed.status.status_code == StatusCode.ERROR
    assert consumed.status.description == "unprocessable: no such task"
    assert consumed.parent is None  # neither headers nor envelope named a trace


async def publish_plain(topology: EventTopology, body: bytes, routing_key: str) -> None:
    """Publish an encoded event with no headers, as a producer other than the relay might."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.exchange)
        await exchange.publish(aio_pika.Message(body), routing_key=routing_key)
