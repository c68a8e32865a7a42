"""Dead letters: list what a service gave up on, and send chosen messages back to it.

    python -m taskmesh_chassis.events.dlq list --service notifications
    python -m taskmesh_chassis.events.dlq replay --service notifications EVENT_ID [EVENT_ID ...]
    python -m taskmesh_chassis.events.dlq replay --all --service notifications

It reads AMQP_URL and EVENTS_EXCHANGE as the services do. Listing takes the messages off the
dead-letter queue without acknowledging them, then closes its channel, which returns them
all. Replaying sends the chosen ones to the service's own queue (not to the exchange: the
other services have them already) with a fresh attempt count, and only once the broker
confirmed that copy acknowledges the dead letter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import ChannelNotFoundEntity
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from taskmesh_chassis.events.broker import BROKER_ERRORS
from taskmesh_chassis.events.delivery import DeadLetter, describe_dead_letter, replay_headers
from taskmesh_chassis.events.settings import EventSettings
from taskmesh_chassis.events.topology import EventTopology
from taskmesh_chassis.logging import configure_logging
from taskmesh_chassis.settings import BaseServiceSettings

DEFAULT_LIST_LIMIT: Final = 10_000
_GET_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """Which dead letters went back to the service, and which asked-for ids were not there."""

    replayed: list[str]
    not_found: list[str]


class DeadLetterQueue:
    """One consuming service's dead-letter queue."""

    def __init__(self, broker: AbstractConnection, topology: EventTopology, service: str) -> None:
        self._broker = broker
        self._queues = topology.queues_of(service)

    async def peek(self, limit: int = DEFAULT_LIST_LIMIT) -> list[DeadLetter]:
        """Describe up to `limit` dead letters, oldest first, leaving them all in place."""
        async with await self._broker.channel() as channel:
            messages = await self._take(channel, limit)
            return [_describe(message) for message in messages]

    async def replay(self, event_ids: Collection[str] | None = None) -> ReplayOutcome:
        """Send the dead letters with these event ids (all of them if None) back to the service."""
        replayed: list[str] = []
        async with await self._broker.channel(
            publisher_confirms=True, on_return_raises=True
        ) as channel:
            for message in await self._take(channel, DEFAULT_LIST_LIMIT):
                event_id = _describe(message).event_id
                wanted = event_ids is None or event_id in event_ids
                if not wanted or event_id in replayed:
                    continue
                copy = aio_pika.Message(
                    body=message.body,
                    headers=replay_headers(message.headers),
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=message.message_id,
                    type=message.type,
                    timestamp=message.timestamp,
                    app_id=message.app_id,
                )
                await channel.default_exchange.publish(copy, routing_key=self._queues.main)
                await message.ack()
                replayed.append(event_id)
        not_found = sorted(set(event_ids or ()) - set(replayed))
        return ReplayOutcome(replayed=replayed, not_found=not_found)

    async def _take(self, channel: AbstractChannel, limit: int) -> list[AbstractIncomingMessage]:
        """Get up to `limit` messages, unacknowledged: closing the channel returns them."""
        queue = await channel.get_queue(self._queues.dead_letter, ensure=True)
        # Only the messages there now: a replayed one failing again must not come round twice.
        present = queue.declaration_result.message_count or 0
        messages: list[AbstractIncomingMessage] = []
        while len(messages) < min(limit, present):
            message = await queue.get(no_ack=False, fail=False, timeout=_GET_TIMEOUT_S)
            if message is None:
                break
            messages.append(message)
        return messages


def _describe(message: AbstractIncomingMessage) -> DeadLetter:
    return describe_dead_letter(
        message.body, message.headers, message_id=message.message_id, message_type=message.type
    )


class DeadLetterToolSettings(BaseServiceSettings, EventSettings):
    """What the dead-letter tool reads from the environment."""

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m taskmesh_chassis.events.dlq",
        description="List and replay the dead-lettered events of a consuming service.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list dead letters: id, type, reason, attempts")
    listing.add_argument("--service", required=True, help="consuming service, e.g. analytics")
    listing.add_argument("--limit", type=int, default=DEFAULT_LIST_LIMIT)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    replay = commands.add_parser("replay", help="send dead letters back to their service")
    replay.add_argument("--service", required=True, help="consuming service, e.g. analytics")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.add_argument("event_ids", nargs="*", metavar="EVENT_ID")
    return parser


def format_table(dead_letters: Sequence[DeadLetter]) -> str:
    """The dead letters as an aligned text table, one per line after a header."""
    rows = [("EVENT ID", "TYPE", "REASON", "ATTEMPTS", "DEAD-LETTERED AT", "ERROR")]
    rows += [
        (
            letter.event_id,
            letter.event_type,
            letter.reason,
            str(letter.attempts),
            letter.dead_lettered_at.isoformat(timespec="seconds")
            if letter.dead_lettered_at
            else "-",
            letter.error.replace("\n", " "),
        )
        for letter in dead_letters
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[5]])
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


async def run_command(arguments: argparse.Namespace, settings: DeadLetterToolSettings) -> int:
    """Carry out one parsed command; return the process exit status."""
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value(), timeout=10)
    async with connection:
        queue = DeadLetterQueue(connection, settings.event_topology, arguments.service)
        if arguments.command == "list":
            dead_letters = await queue.peek(limit=arguments.limit)
            if arguments.json:
                for letter in dead_letters:
                    sys.stdout.write(json.dumps(asdict(letter), default=str) + "\n")
            else:
                sys.stdout.write(format_table(dead_letters))
                sys.stdout.write(f"{len(dead_letters)} dead letter(s)\n")
            return 0
        outcome = await queue.replay(None if arguments.all else set(arguments.event_ids))
        for event_id in outcome.replayed:
            sys.stdout.write(f"replayed {event_id}\n")
        for event_id in outcome.not_found:
            sys.stdout.write(f"not found {event_id}\n")
        sys.stdout.write(f"{len(outcome.replayed)} replayed, {len(outcome.not_found)} not found\n")
        return 1 if outcome.not_found else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the dead-letter tool with command-line arguments `argv`."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "replay" and arguments.all == bool(arguments.event_ids):
        parser.error("replay takes either event ids or --all")
    try:
        settings = DeadLetterToolSettings()
    except ValidationError as error:
        # Names and reasons only: the values may be secrets.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']).upper()}: {item['msg']}"
            for item in error.errors(include_input=False)
        )
        sys.stderr.write(f"invalid configuration: {problems}\n")
        return 2
    except SettingsError as error:
        sys.stderr.write(f"invalid configuration: {error}\n")
        return 2
    configure_logging("events-dlq", "WARNING", "console", stream=sys.stderr)
    try:
        return asyncio.run(run_command(arguments, settings))
    except ChannelNotFoundEntity:
        queue = settings.event_topology.queues_of(arguments.service).dead_letter
        sys.stderr.write(f"events-dlq: no queue {queue}: has that consumer ever started?\n")
        return 1
    except BROKER_ERRORS as error:
        sys.stderr.write(f"events-dlq: {type(error).__name__}: {error}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
