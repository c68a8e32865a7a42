"""Throughput of the event backbone: outbox -> relay -> RabbitMQ -> consumer.

Starts SecantusDB in a process of its own (as `make run` does) on a throw-away directory,
uses the machine's RabbitMQ, and measures two things:

  live     writers commit state changes with one event each while the relay and a
           consumer run: events/s from the first commit to the last effect stored
  backlog  events committed while nothing runs, then relay and consumer started:
           how fast the relay publishes and the consumer applies a backlog

Prints figures; asserts nothing.

    .venv/bin/python bench/events_throughput.py [--events 3000] [--writers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from secantus_process import start_secantus
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.events import (
    Event,
    EventConsumer,
    EventTopology,
    Outbox,
    OutboxRelay,
    RetryPolicy,
    connect_broker,
)
from taskmesh_chassis.events.topology import delete_service_queues
from taskmesh_chassis.logging import configure_logging
from taskmesh_chassis.mongo import create_mongo_client

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
RETRY_POLICY = RetryPolicy(delays_s=(1.0,))
Database = AsyncDatabase[dict[str, Any]]


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float = 600) -> float:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        await asyncio.sleep(0.02)
    return time.perf_counter()


async def write(outbox: Outbox, count: int, writers: int) -> None:
    """Commit `count` transactions, each one state change and one event, `writers` at once."""
    numbers = iter(range(count))

    async def writer() -> None:
        for number in numbers:
            async with outbox.transaction() as uow:
                subject = f"task-{number % 500}"
                await outbox.database["tasks"].insert_one({"number": number}, session=uow.session)
                uow.add_event(
                    "task.deleted",
                    subject=subject,
                    payload=events_pb2.TaskDeleted(task_id=subject, actor_id=str(number)),
                )

    await asyncio.gather(*(writer() for _ in range(writers)))


async def run_scenario(
    scenario: str, client: Any, broker: Any, topology: EventTopology, events: int, writers: int
) -> str:
    """Run one scenario on fresh databases; return its line of figures."""
    producer_db: Database = client[f"bench_producer_{scenario}"]
    consumer_db: Database = client[f"bench_consumer_{scenario}"]
    await producer_db.create_collection("tasks")
    await consumer_db.create_collection("effects")

    async def store_effect(event: Event, session: AsyncClientSession) -> None:
        await consumer_db["effects"].insert_one(
            {"event_id": event.id, "subject": event.subject}, session=session
        )

    async def all_stored() -> bool:
        return await consumer_db["effects"].count_documents({}) >= events

    async def all_published() -> bool:
        return await outbox.count_pending() == 0

    outbox = Outbox(producer_db, source="taskmesh/bench")
    await outbox.ensure_indexes()
    relay = OutboxRelay(outbox, broker, topology=topology)
    consumer = EventConsumer(
        service=f"bench-{scenario}",
        database=consumer_db,
        broker=broker,
        handlers={"task.deleted": store_effect},
        topology=topology,
        retry_policy=RETRY_POLICY,
        prefetch=64,
    )
    try:
        await consumer.start()
        if scenario == "live":
            await relay.start()
            started = time.perf_counter()
            await write(outbox, events, writers)
            written = time.perf_counter()
            stored = await wait_for(all_stored)
            return (
                f"live     {events} events, {writers} writers: "
                f"commits {events / (written - started):6.0f}/s   "
                f"end to end {events / (stored - started):6.0f} events/s"
            )
        await consumer.stop()
        started = time.perf_counter()
        await write(outbox, events, writers)
        written = time.perf_counter()
        await relay.start()
        relay_started = time.perf_counter()
        published = await wait_for(all_published)
        await consumer.start()
        consumer_started = time.perf_counter()
        stored = await wait_for(all_stored)
        return (
            f"backlog  {events} events, {writers} writers: "
            f"commits {events / (written - started):6.0f}/s   "
            f"relay {events / (published - relay_started):6.0f} events/s   "
            f"consumer {events / (stored - consumer_started):6.0f} events/s"
        )
    finally:
        await relay.stop()
        await consumer.stop()
        channel = await broker.channel()
        await delete_service_queues(channel, topology, f"bench-{scenario}", RETRY_POLICY)
        await channel.close()


async def run(mongo_url: str, events: int, writers: int) -> None:
    client = create_mongo_client(mongo_url, appname="bench-events")
    topology = EventTopology(exchange=f"bench.events.{uuid.uuid4().hex[:8]}")
    broker = await connect_broker(AMQP_URL, connection_name="taskmesh-bench-events")
    try:
        for scenario in ("live", "backlog"):
            line = await run_scenario(scenario, client, broker, topology, events, writers)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    finally:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            await (await connection.channel()).exchange_delete(topology.exchange)
        await broker.close()
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--writers", type=int, default=8)
    arguments = parser.parse_args()
    configure_logging("bench", "WARNING")
    with tempfile.TemporaryDirectory(prefix="bench-events-") as storage:
        process, mongo_url = start_secantus(storage)
        try:
            asyncio.run(run(mongo_url, arguments.events, arguments.writers))
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
