"""Real-time push: `GET /api/v1/ws` and what feeds it (docs/gateway.md, "Real-time").

messages  each forwarded event as a JSON message, and whose sockets receive it
hub       the open sockets of this instance, their bounded queues, token expiry and revocation
stream    this instance's own exclusive queue on the events exchange, into the hub
endpoint  the WebSocket route: admission of the handshake, then sending
"""

from __future__ import annotations

from aio_pika.abc import AbstractRobustConnection

from taskmesh_gateway.realtime.hub import Hub, RevocationCheck
from taskmesh_gateway.realtime.stream import EventStream
from taskmesh_gateway.settings import GatewaySettings


class Realtime:
    """The WebSocket push of one gateway instance: the hub of its sockets and its event feed."""

    def __init__(
        self,
        settings: GatewaySettings,
        revocations: RevocationCheck,
        connection: AbstractRobustConnection,
    ) -> None:
        self.hub = Hub(
            revocations,
            send_queue_size=settings.ws_send_queue_size,
            check_interval_s=settings.ws_revocation_check_interval_s,
            revocation_grace_s=settings.ws_revocation_grace_s,
        )
        self.stream = EventStream(
            connection, settings.event_topology, self.hub, instance_name=settings.instance_name
        )

    def start(self) -> None:
        """Start checking tokens and consuming events (in the background)."""
        self.hub.start()
        self.stream.start()

    async def stop(self) -> None:
        """Stop consuming, then close the sockets still open."""
        await self.stream.stop()
        await self.hub.stop()


__all__ = ["Realtime"]
