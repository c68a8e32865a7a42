"""The connection to RabbitMQ: robust (it reconnects by itself) and named after its process."""

from __future__ import annotations

import contextlib
from typing import Final

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aio_pika.connection import make_url
from aiormq.exceptions import AMQPError, ChannelInvalidStateError

# What a publish, an ack or a declaration raises when the broker or the connection fails.
BROKER_ERRORS: Final = (AMQPError, ChannelInvalidStateError, ConnectionError, OSError, TimeoutError)


async def connect_broker(
    url: str,
    *,
    connection_name: str,
    reconnect_interval_s: float = 1.0,
    timeout_s: float = 10.0,
) -> AbstractRobustConnection:
    """Connect to RabbitMQ; the connection re-establishes itself and its channels when lost.

    `connection_name` shows in `rabbitmqctl list_connections` and the management UI. A first
    connection that fails (or is cancelled) is closed before the error propagates, rather than
    left for the garbage collector to close on a loop that may be gone.
    """
    connection = aio_pika.RobustConnection(
        make_url(url, reconnect_interval=reconnect_interval_s),
        client_properties={"connection_name": connection_name},
    )
    try:
        await connection.connect(timeout=timeout_s)
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.close()
        raise
    return connection
