"""BackgroundRelay and BackgroundConsumer: a service's event parts as non-blocking hooks."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from taskmesh_chassis.events import (
    BackgroundConsumer,
    BackgroundRelay,
    EventSettings,
    EventTopology,
    Outbox,
)

from .support import AMQP_URL, Database, Declared, EffectLog, eventually, write_events

pytestmark = pytest.mark.integration


def unreachable_amqp_url() -> str:
    """An AMQP URL on a local port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}/"


async def test_without_a_broker_both_start_at_once_keep_retrying_and_stop_cleanly(
    producer_db: Database, consumer_db: Database, topology: EventTopology
) -> None:
    url = unreachable_amqp_url()
    relay = BackgroundRelay(
        Outbox(producer_db, source="taskmesh/test"),
        url,
        connection_name="taskmesh-test-relay",
        topology=topology,
    )
    consumer = BackgroundConsumer(
        service="background",
        database=consumer_db,
        handlers={"task.deleted": EffectLog(consumer_db).handle},
        settings=EventSettings(events_exchange=topology.exchange),
        amqp_url=url,
        connection_name="taskmesh-test-consumer",
    )
    began = time.monotonic()
    await relay.start()
    await consumer.start()
    assert time.monotonic() - began < 0.5

    await asyncio.sleep(1.0)
    assert not relay.started.is_set()
    assert not consumer.started.is_set()

    began = time.monotonic()
    await relay.stop()
    await consumer.stop()
    assert time.monotonic() - began < 2.0


async def test_events_committed_before_start_are_relayed_and_applied_once_running(
    producer_db: Database, consumer_db: Database, topology: EventTopology, declared: Declared
) -> None:
    settings = EventSettings(events_exchange=topology.exchange, events_retry_delays_s=(0.1,))
    effects = EffectLog(consumer_db)
    consumer = BackgroundConsumer(
        service="background",
        database=consumer_db,
        handlers={"task.deleted": effects.handle},
        settings=settings,
        amqp_url=AMQP_URL,
        connection_name="taskmesh-test-consumer",
    )
    declared.services.append(("background", settings.retry_policy))
    outbox = Outbox(producer_db, source="taskmesh/test")
    relay = BackgroundRelay(
        outbox, AMQP_URL, connection_name="taskmesh-test-relay", topology=topology
    )
    await consumer.start()
    assert consumer.started.is_set()
    event_ids = await write_events(outbox, range(5))
    try:
        await relay.start()

        async def applied() -> bool:
            return sorted(await effects.applications_per_event()) == sorted(event_ids)

        await eventually(applied, timeout_s=10, what="the events applied by the consumer")
        assert set((await effects.applications_per_event()).values()) == {1}
        assert await outbox.count_pending() == 0
    finally:
        await relay.stop()
        await consumer.stop()
