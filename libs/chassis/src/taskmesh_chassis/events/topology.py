"""What exists on the broker: the events exchange and each consuming service's queues.

    exchange  <exchange>                        durable topic exchange, routing key = event type
    queue     <exchange>.<service>              quorum queue, bound by the service's event types
    queue     <exchange>.<service>.retry.<ms>ms quorum queue holding a failed event for <ms>,
                                                then dead-lettering it back to the service queue
    queue     <exchange>.<service>.dlq          quorum queue of events given up on

Declarations are idempotent and aio-pika's robust channels repeat them after a reconnect.
Queue arguments cannot change once a queue exists: a changed retry delay makes a new retry
queue (the name carries the delay), and the old one merely drains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from taskmesh_chassis.events.retry import RetryPolicy

DEFAULT_EXCHANGE: Final = "taskmesh.events"
# Redeliveries without an ack (the consumer crashed or lost its connection each time) after
# which the broker itself dead-letters a message: a poison message cannot loop forever.
DEFAULT_DELIVERY_LIMIT: Final = 10

_BINDING_WORD = re.compile(r"[a-z0-9_]+|\*|#")
_NAME = re.compile(r"[a-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class ServiceQueues:
    """The names of one consuming service's queues."""

    main: str
    dead_letter: str

    def retry(self, delay_ms: int) -> str:
        """The retry queue that holds a message for `delay_ms` milliseconds."""
        return f"{self.main}.retry.{delay_ms}ms"


@dataclass(frozen=True, slots=True)
class EventTopology:
    """The exchange every event is published to, and how queue names derive from it."""

    exchange: str = DEFAULT_EXCHANGE

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.exchange):
            raise ValueError(f"invalid exchange name {self.exchange!r}")

    def queues_of(self, service: str) -> ServiceQueues:
        """The queue names of the consuming service `service` (e.g. `notifications`)."""
        if not _NAME.fullmatch(service):
            raise ValueError(f"invalid service name {service!r}")
        main = f"{self.exchange}.{service}"
        return ServiceQueues(main=main, dead_letter=f"{main}.dlq")


def is_binding_key(value: str) -> bool:
    """Tell whether `value` is a topic binding key: words, `*` (one word) or `#` (any)."""
    return all(_BINDING_WORD.fullmatch(word) for word in value.split("."))


def topic_matches(binding_key: str, routing_key: str) -> bool:
    """Tell whether a topic exchange routes `routing_key` through `binding_key`."""
    return _match_words(binding_key.split("."), routing_key.split("."))


def _match_words(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match_words(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match_words(rest, words[1:])


def quorum_arguments(**extra: Any) -> dict[str, Any]:
    """Arguments of a quorum queue, plus `extra` ones."""
    return {"x-queue-type": "quorum", **extra}


def _dead_letter_to(queue: str) -> dict[str, Any]:
    # At-least-once dead-lettering (RabbitMQ >= 3.10) needs reject-publish overflow.
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare_exchange(channel: AbstractChannel, topology: EventTopology) -> AbstractExchange:
    """Declare the durable topic exchange of all events."""
    return await channel.declare_exchange(
        topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )


async def declare_service_queues(
    channel: AbstractChannel,
    topology: EventTopology,
    service: str,
    binding_keys: Iterable[str],
    retry_policy: RetryPolicy,
    *,
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> AbstractQueue:
    """Declare a service's queues and bindings; return its main queue."""
    names = topology.queues_of(service)
    exchange = await declare_exchange(channel, topology)
    await channel.declare_queue(names.dead_letter, durable=True, arguments=quorum_arguments())
    for delay in retry_policy.distinct_delays_ms:
        await channel.declare_queue(
            names.retry(delay),
            durable=True,
            arguments=quorum_arguments(**{"x-message-ttl": delay}, **_dead_letter_to(names.main)),
        )
    main = await channel.declare_queue(
        names.main,
        durable=True,
        arguments=quorum_arguments(
            **{"x-delivery-limit": delivery_limit}, **_dead_letter_to(names.dead_letter)
        ),
    )
    for key in binding_keys:
        if not is_binding_key(key):
            raise ValueError(f"invalid binding key {key!r}")
        await main.bind(exchange, routing_key=key)
    return main


async def delete_service_queues(
    channel: AbstractChannel, topology: EventTopology, service: str, retry_policy: RetryPolicy
) -> None:
    """Delete a service's queues, messages included (for tests and decommissioning)."""
    names = topology.queues_of(service)
    retry_queues = [names.retry(delay) for delay in retry_policy.distinct_delays_ms]
    for name in (names.main, *retry_queues, names.dead_letter):
        await channel.queue_delete(name)
