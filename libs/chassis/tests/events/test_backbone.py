"""The event backbone end to end, against the real RabbitMQ and SecantusDB."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from pymongo.asynchronous.client_session import AsyncClientSession
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.context import RequestContext
from taskmesh_chassis.events import (
    Event,
    EventTopology,
    Outbox,
    UnprocessableEvent,
    call_after_commit,
)
from taskmesh_chassis.events.dlq import DeadLetterQueue
from taskmesh_chassis.events.envelope import decode_event, encode_event, new_event
from taskmesh_chassis.events.lease import LEASE_COLLECTION
from taskmesh_chassis.events.outbox import PENDING_FILTER, PENDING_SORT

from .support import (
    AMQP_URL,
    Backbone,
    Brokers,
    Database,
    EffectLog,
    drop_connection,
    eventually,
    metric,
    payload_number,
    write_events,
)

pytestmark = pytest.mark.integration


@dataclass
class Tap:
    """A queue bound to every event on the exchange, recording the ids that reach it."""

    received: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self.received.append(message.message_id or "")
        self.bodies.append(message.body)


@pytest.fixture
async def tap(topology: EventTopology, declared: Any) -> AsyncIterator[Tap]:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="#")
        recorder = Tap()
        await queue.consume(recorder.on_message, no_ack=True)
        yield recorder


def plan_stages(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every stage of a query plan, outermost first."""
    stages = [plan]
    if "inputStage" in plan:
        stages += plan_stages(plan["inputStage"])
    for child in plan.get("inputStages", []):
        stages += plan_stages(child)
    return stages


async def test_the_state_change_and_its_event_commit_together(producer_db: Database) -> None:
    outbox = Outbox(producer_db, source="taskmesh/test")
    await outbox.ensure_indexes()

    async with outbox.transaction() as uow:
        await producer_db["tasks"].insert_one({"_id": "task-1"}, session=uow.session)
        event = uow.add_event("task.deleted", subject="task-1", payload=payload_number(1, "t"))

    record = await outbox.collection.find_one({"_id": event.id})
    assert await producer_db["tasks"].count_documents({"_id": "task-1"}) == 1
    assert record is not None
    assert (record["type"], record["subject"]) == ("task.deleted", "task-1")
    assert "pending_seq" in record


async def test_an_aborted_transaction_leaves_neither_state_nor_event(producer_db: Database) -> None:
    outbox = Outbox(producer_db, source="taskmesh/test")
    await outbox.ensure_indexes()

    async def fail_after_writing() -> None:
        async with outbox.transaction() as uow:
            await producer_db["tasks"].insert_one({"_id": "task-1"}, session=uow.session)
            uow.add_event("task.deleted", subject="task-1", payload=payload_number(1, "t"))
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        await fail_after_writing()

    assert await producer_db["tasks"].count_documents({}) == 0
    assert await outbox.count_pending() == 0


async def test_the_relays_queries_are_served_by_indexes(producer_db: Database) -> None:
    outbox = Outbox(producer_db, source="taskmesh/test")
    await outbox.ensure_indexes()
    await write_events(outbox, range(30))

    backlog_plan = await outbox.collection.find(PENDING_FILTER).sort(PENDING_SORT).explain()
    lease_plan = await producer_db[LEASE_COLLECTION].find({"_id": "relay"}).explain()
    mark_plan = await outbox.collection.find({"_id": "some-event"}).explain()

    backlog_stages = plan_stages(backlog_plan["queryPlanner"]["winningPlan"])
    assert [s["indexName"] for s in backlog_stages if s["stage"] == "IXSCAN"] == ["pending_seq"]
    assert not [s for s in backlog_stages if s["stage"] in ("SORT", "COLLSCAN")]
    for plan in (lease_plan, mark_plan):
        stages = plan_stages(plan["queryPlanner"]["winningPlan"])
        assert not [s for s in stages if s["stage"] == "COLLSCAN"]


async def test_a_commit_wakes_the_relay_at_once(
    producer_db: Database, brokers: Brokers, backbone: Backbone, tap: Tap
) -> None:
    outbox = Outbox(producer_db, source="taskmesh/test")
    broker, _ = await brokers.connect("relay")
    await backbone.relay(outbox, broker, watch_changes=False, sweep_interval_s=60)
    await asyncio.sleep(0.2)

    event_ids = await write_events(outbox, range(3))

    async def arrived() -> bool:
        return sorted(tap.received) == sorted(event_ids)

    await eventually(arrived, timeout_s=2, what="the events on the exchange")
    assert await outbox.count_pending() == 0


async def test_an_insert_by_another_instance_wakes_the_relay_through_the_change_stream(
    producer_db: Database, brokers: Brokers, backbone: Backbone, tap: Tap
) -> None:
    relays_outbox = Outbox(producer_db, source="taskmesh/test")
    other_instances_outbox = Outbox(producer_db, source="taskmesh/test")
    broker, _ = await brokers.connect("relay")
    await backbone.relay(relays_outbox, broker, sweep_interval_s=60)
    await asyncio.sleep(0.5)

    event_ids = await write_events(other_instances_outbox, range(3))

    async def arrived() -> bool:
        return sorted(tap.received) == sorted(event_ids)

    await eventually(arrived, timeout_s=2, what="the events on the exchange")


async def test_only_the_lease_holder_publishes_and_a_standby_takes_over(
    producer_db: Database, brokers: Brokers, backbone: Backbone, tap: Tap
) -> None:
    first, second = (Outbox(producer_db, source="taskmesh/test") for _ in range(2))
    first_broker, _ = await brokers.connect("relay-1")
    second_broker, _ = await brokers.connect("relay-2")
    holder = await backbone.relay(first, first_broker, lease_ttl_s=1.5)
    await backbone.relay(second, second_broker, lease_ttl_s=1.5)

    event_ids = await write_events(first, range(30)) + await write_events(second, range(30, 60))

    async def all_arrived() -> bool:
        return set(tap.received) == set(event_ids)

    await eventually(all_arrived, timeout_s=10, what="60 events")
    await backbone.stop(holder)
    later_ids = await write_events(second, range(60, 70))

    async def later_arrived() -> bool:
        return set(later_ids) <= set(tap.received)

    await eventually(later_arrived, timeout_s=10, what="events after the takeover")
    assert Counter(tap.received) == Counter(event_ids + later_ids)


async def test_a_thousand_events_apply_once_across_a_relay_restart_and_a_consumer_crash(
    producer_db: Database, consumer_db: Database, brokers: Brokers, backbone: Backbone
) -> None:
    outbox = Outbox(producer_db, source="taskmesh/test")
    effects = EffectLog(consumer_db)
    consumer_broker, consumer_connection = await brokers.connect("consumer")
    relay_broker, _ = await brokers.connect("relay")
    crashed = asyncio.Event()

    async def apply_then_crash_once(event: Event, session: AsyncClientSession) -> None:
        await effects.handle(event, session)
        if not crashed.is_set() and effects.calls.total() >= 300:
            crashed.set()
            # The effect is written, its transaction about to commit, the ack not yet sent.
            await asyncio.to_thread(drop_connection, consumer_connection)

    duplicates_before = metric(
        "taskmesh_events_consumed_total",
        service="effects",
        event_type="task.deleted",
        outcome="duplicate",
    )
    await backbone.consumer(
        "effects", consumer_db, consumer_broker, {"task.deleted": apply_then_crash_once}
    )
    relay = await backbone.relay(outbox, relay_broker)
    event_ids = await write_events(outbox, range(500))
    await backbone.stop(relay)
    event_ids += await write_events(outbox, range(500, 1000))
    assert await outbox.count_pending() > 0
    await backbone.relay(outbox, relay_broker)

    async def all_applied() -> bool:
        return await effects.count() >= 1000 and await outbox.count_pending() == 0

    await eventually(all_applied, timeout_s=90, what="1000 effects")
    await asyncio.sleep(0.5)
    applications = await effects.applications_per_event()
    assert set(applications) == set(event_ids)
    assert set(applications.values()) == {1}
    assert crashed.is_set()
    duplicates = (
        metric(
            "taskmesh_events_consumed_total",
            service="effects",
            event_type="task.deleted",
            outcome="duplicate",
        )
        - duplicates_before
    )
    assert duplicates >= 1, "the crash should have caused at least one redelivery"
    for subject, numbers in (await effects.numbers_by_subject()).items():
        assert numbers == sorted(numbers), f"{subject} applied out of order"


async def test_dropping_the_relays_connection_while_publishing_loses_nothing(
    producer_db: Database, brokers: Brokers, backbone: Backbone, tap: Tap
) -> None:
    outbox = Outbox(producer_db, source="taskmesh/test")
    await outbox.ensure_indexes()
    event_ids = await write_events(outbox, range(1500), per_transaction=50)
    broker, connection_name = await brokers.connect("relay")
    reconnected = asyncio.Event()
    broker.reconnect_callbacks.add(lambda *_: reconnected.set())
    await backbone.relay(outbox, broker, batch_size=100)

    async def publishing_started() -> bool:
        return len(tap.received) >= 100

    await eventually(publishing_started, timeout_s=10, what="the first events")
    await asyncio.to_thread(drop_connection, connection_name)
    pending_after_drop = await outbox.count_pending()

    async def drained() -> bool:
        return await outbox.count_pending() == 0 and set(tap.received) >= set(event_ids)

    await eventually(drained, timeout_s=60, what="the backlog to drain")
    assert pending_after_drop > 0, "the connection should drop while events are pending"
    assert reconnected.is_set()
    assert set(tap.received) == set(event_ids)


async def test_a_failing_event_is_dead_lettered_after_its_attempts_and_replay_applies_it(
    producer_db: Database, consumer_db: Database, brokers: Brokers, backbone: Backbone
) -> None:
    outbox = Outbox(producer_db, source="taskmesh/test")
    effects = EffectLog(consumer_db, failing_subjects={"task-poison"})
    broker, _ = await brokers.connect("both")
    await backbone.consumer("effects", consumer_db, broker, {"task.deleted": effects.handle})
    await backbone.relay(outbox, broker)
    dead_letters = DeadLetterQueue(broker, backbone.topology, "effects")

    async with outbox.transaction() as uow:
        poison = uow.add_event(
            "task.deleted", subject="task-poison", payload=payload_number(0, "task-poison")
        )
    healthy_ids = await write_events(outbox, range(1, 21))

    async def dead_lettered() -> bool:
        return len(await dead_letters.peek()) == 1 and await effects.count() == 20

    await eventually(dead_lettered, timeout_s=20, what="the dead letter and the 20 effects")
    [letter] = await dead_letters.peek()
    assert (letter.event_id, letter.reason, letter.attempts) == (
        poison.id,
        "retries_exhausted",
        3,
    )
    assert "cannot apply task-poison yet" in letter.error
    assert effects.calls[poison.id] == 3
    assert set((await effects.applications_per_event()).keys()) == set(healthy_ids)

    effects.failing_subjects.clear()
    outcome = await dead_letters.replay({poison.id})

    async def applied() -> bool:
        return poison.id in await effects.applications_per_event()

    await eventually(applied, timeout_s=10, what="the replayed event")
    assert (outcome.replayed, outcome.not_found) == ([poison.id], [])
    assert await dead_letters.peek() == []
    assert effects.calls[poison.id] == 4


async def test_an_unprocessable_event_is_dead_lettered_without_retries(
    consumer_db: Database, brokers: Brokers, backbone: Backbone
) -> None:
    calls: list[str] = []

    async def refuse(event: Event, session: AsyncClientSession) -> None:
        calls.append(event.id)
        raise UnprocessableEvent("task-9 belongs to nobody")

    broker, _ = await brokers.connect("consumer")
    await backbone.consumer("refuser", consumer_db, broker, {"task.deleted": refuse})
    dead_letters = DeadLetterQueue(broker, backbone.topology, "refuser")
    event = event_of("task.deleted", payload_number(9, "task-9"))
    await publish_raw(backbone.topology, encode_event(event), "task.deleted", event.id)

    async def dead_lettered() -> bool:
        return len(await dead_letters.peek()) == 1

    await eventually(dead_lettered, timeout_s=10, what="the dead letter")
    [letter] = await dead_letters.peek()
    assert (letter.reason, letter.attempts, calls) == ("unprocessable", 1, [event.id])


def event_of(event_type: str, payload: Any, subject: str = "task-9") -> Event:
    return new_event(
        event_type,
        source="taskmesh/test",
        subject=subject,
        payload=payload,
        context=RequestContext(request_id="test"),
    )


async def publish_raw(
    topology: EventTopology, body: bytes, routing_key: str, message_id: str | None = None
) -> None:
    """Publish bytes to the exchange as a foreign or broken producer would."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.exchange)
        await exchange.publish(
            aio_pika.Message(body, message_id=message_id), routing_key=routing_key
        )


async def test_malformed_and_unknown_messages_are_dead_lettered_at_once_without_blocking(
    consumer_db: Database, brokers: Brokers, backbone: Backbone
) -> None:
    effects = EffectLog(consumer_db)
    broker, _ = await brokers.connect("consumer")
    await backbone.consumer("effects", consumer_db, broker, {"task.deleted": effects.handle})
    unknown = event_of("task.created", events_pb2.TaskCreated())
    good = event_of("task.deleted", payload_number(1, "task-9"))

    await publish_raw(backbone.topology, b"\x00garbage", "task.deleted", "garbage-1")
    await publish_raw(backbone.topology, encode_event(unknown), "task.deleted", unknown.id)
    await publish_raw(backbone.topology, encode_event(good), "task.deleted", good.id)

    async def good_applied() -> bool:
        return await effects.count() == 1

    await eventually(good_applied, timeout_s=10, what="the good event")
    listing = await asyncio.to_thread(
        run_dlq_tool, backbone.topology, "list", "--service", "effects", "--json"
    )
    letters = {line["event_id"]: line for line in map(json.loads, listing.splitlines())}
    assert {event_id: letter["reason"] for event_id, letter in letters.items()} == {
        "garbage-1": "malformed",
        unknown.id: "unknown_type",
    }
    assert letters["garbage-1"]["attempts"] == 1
    assert list(effects.calls) == [good.id]


def run_dlq_tool(topology: EventTopology, *arguments: str) -> str:
    """Run `python -m taskmesh_chassis.events.dlq` as an operator would; return its output."""
    completed = subprocess.run(
        [sys.executable, "-m", "taskmesh_chassis.events.dlq", *arguments],
        env={**os.environ, "EVENTS_EXCHANGE": topology.exchange, "AMQP_URL": AMQP_URL},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout


async def test_stopping_a_consumer_lets_its_in_flight_handlers_finish(
    consumer_db: Database, brokers: Brokers, backbone: Backbone
) -> None:
    effects = EffectLog(consumer_db)
    started = asyncio.Event()

    async def slow(event: Event, session: AsyncClientSession) -> None:
        started.set()
        await asyncio.sleep(0.5)
        await effects.handle(event, session)

    broker, _ = await brokers.connect("consumer")
    consumer = await backbone.consumer("slow", consumer_db, broker, {"task.deleted": slow})
    events = [event_of("task.deleted", payload_number(n, f"t-{n}"), f"t-{n}") for n in range(5)]
    for event in events:
        await publish_raw(backbone.topology, encode_event(event), "task.deleted", event.id)
    await asyncio.wait_for(started.wait(), timeout=5)
    await asyncio.sleep(0.1)

    await backbone.stop(consumer)

    assert await effects.count() == 5
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(backbone.topology.queues_of("slow").main)
        assert queue.declaration_result.message_count == 0


async def test_a_handler_emits_events_that_commit_with_its_effect(
    consumer_db: Database, brokers: Brokers, backbone: Backbone, tap: Tap
) -> None:
    outbox = Outbox(consumer_db, source="taskmesh/notifications")
    broker, _ = await brokers.connect("both")
    await backbone.relay(outbox, broker)

    async def notify_owner(event: Event, session: AsyncClientSession) -> None:
        await consumer_db["effects"].insert_one({"event_id": event.id}, session=session)
        await outbox.add_event(
            session,
            "notification.created",
            subject="user-1",
            payload=events_pb2.NotificationCreated(user_id="user-1"),
        )

    await backbone.consumer("notifier", consumer_db, broker, {"task.deleted": notify_owner})
    cause = new_event(
        "task.deleted",
        source="taskmesh/tasks",
        subject="task-9",
        payload=payload_number(9, "task-9"),
        context=RequestContext(request_id="req-cause"),
    )
    await publish_raw(backbone.topology, encode_event(cause), "task.deleted", cause.id)

    async def notified() -> bool:
        return any(decode_event(body).type == "notification.created" for body in tap.bodies)

    await eventually(notified, timeout_s=10, what="the emitted event")
    [emitted] = [
        event for event in map(decode_event, tap.bodies) if event.type == "notification.created"
    ]
    assert (emitted.source, emitted.request_id) == ("taskmesh/notifications", "req-cause")
    assert await consumer_db["effects"].count_documents({"event_id": cause.id}) == 1


async def test_after_commit_callbacks_run_once_the_effect_is_committed_and_never_on_abort(
    consumer_db: Database, brokers: Brokers, backbone: Backbone
) -> None:
    effects = EffectLog(consumer_db)
    seen_at_callback: list[int] = []
    committed = asyncio.Event()

    def after_commit() -> None:
        task = asyncio.ensure_future(effects.count())
        task.add_done_callback(
            lambda done: (seen_at_callback.append(done.result()), committed.set())
        )

    async def handle(event: Event, session: AsyncClientSession) -> None:
        call_after_commit(after_commit)
        await effects.handle(event, session)

    effects.failing_subjects.add("t-bad")
    broker, _ = await brokers.connect("consumer")
    await backbone.consumer("committer", consumer_db, broker, {"task.deleted": handle})
    failing = event_of("task.deleted", payload_number(1, "t-bad"), "t-bad")
    await publish_raw(backbone.topology, encode_event(failing), "task.deleted", failing.id)
    await asyncio.sleep(0.5)
    assert not committed.is_set()

    good = event_of("task.deleted", payload_number(2, "t-good"), "t-good")
    await publish_raw(backbone.topology, encode_event(good), "task.deleted", good.id)
    await asyncio.wait_for(committed.wait(), timeout=5)
    assert seen_at_callback == [1]


def test_after_commit_outside_a_handler_is_refused() -> None:
    with pytest.raises(RuntimeError):
        call_after_commit(lambda: None)
