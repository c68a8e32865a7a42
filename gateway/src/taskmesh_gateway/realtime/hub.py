"""The open sockets of one gateway instance, what they are sent, and when they must close.

Each socket is a `Subscriber` with a bounded queue of messages: `Hub.deliver` only ever puts
into queues without waiting, so a slow client never holds up the event consumer or any other
socket; a client whose queue is full is closed instead. About once a second `check_tokens`
closes the sockets whose token has expired, and asks Redis (one round trip for all of them)
which of their tokens were revoked meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import structlog
from prometheus_client import Counter, Gauge, Histogram
from taskmesh_chassis.identity import EXPIRED_MESSAGE, REVOKED_MESSAGE, Caller

from taskmesh_gateway.realtime.messages import Push

log = structlog.get_logger(__name__)

WEBSOCKET_CONNECTIONS = Gauge(
    "taskmesh_websocket_connections", "WebSockets open on this gateway instance."
)
WEBSOCKET_MESSAGES_SENT = Counter(
    "taskmesh_websocket_messages_sent_total",
    "Messages written to WebSockets, by event type.",
    ["event_type"],
)
WEBSOCKET_DROPPED = Counter(
    "taskmesh_websocket_dropped_total",
    "WebSockets the gateway closed, by reason.",
    ["reason"],
)
WEBSOCKET_DELIVERY_SECONDS = Histogram(
    "taskmesh_websocket_delivery_seconds",
    "From the change (event time) to its message written to a WebSocket.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


@dataclass(frozen=True, slots=True)
class Closing:
    """Why the gateway closes a socket: the close frame's code and reason, and a metric label."""

    code: int
    reason: str
    label: str


SLOW_CLIENT: Final = Closing(1013, "too slow: the send queue is full", "slow_client")
TOKEN_EXPIRED: Final = Closing(4001, EXPIRED_MESSAGE, "token_expired")
TOKEN_REVOKED: Final = Closing(4001, REVOKED_MESSAGE, "token_revoked")
REVOCATION_UNCHECKED: Final = Closing(
    1013, "token revocation cannot be checked; reconnect later", "revocation_unchecked"
)
GOING_AWAY: Final = Closing(1001, "the gateway is shutting down", "shutdown")


class RevocationCheck(Protocol):
    """Tells which tokens have been revoked (the Gatekeeper)."""

    async def revoked(self, callers: Sequence[Caller]) -> set[str]:
        """The token ids (`jti`) of the revoked tokens among the callers'."""
        ...


class Subscriber:
    """One open socket: its caller, its bounded queue of messages, and whether it must close."""

    def __init__(self, caller: Caller, *, queue_size: int, verified_at: float) -> None:
        self.caller = caller
        self.queue: asyncio.Queue[Push] = asyncio.Queue(maxsize=queue_size)
        self.closing: asyncio.Future[Closing] = asyncio.get_running_loop().create_future()
        self.verified_at = verified_at
        """When the token was last found unrevoked (admission, then each check)."""

    def offer(self, push: Push) -> None:
        """Queue a message without waiting; a full queue closes the socket instead."""
        if self.closing.done():
            return
        try:
            self.queue.put_nowait(push)
        except asyncio.QueueFull:
            self.close(SLOW_CLIENT)

    def close(self, closing: Closing) -> None:
        """Ask the socket's session to close with this code and reason (the first ask wins)."""
        if self.closing.done():
            return
        self.closing.set_result(closing)
        WEBSOCKET_DROPPED.labels(closing.label).inc()
        log.info(
            "websocket.dropping",
            user_id=self.caller.user_id,
            code=closing.code,
            reason=closing.label,
        )


class Hub:
    """The sockets of this instance by user; delivers messages and enforces token validity."""

    def __init__(
        self,
        revocations: RevocationCheck,
        *,
        send_queue_size: int,
        check_interval_s: float,
        revocation_grace_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._revocations = revocations
        self._send_queue_size = send_queue_size
        self._check_interval_s = check_interval_s
        self._revocation_grace_s = revocation_grace_s
        self._clock = clock
        self._by_user: dict[str, set[Subscriber]] = {}
        self._watching: asyncio.Task[None] | None = None

    def attach(self, caller: Caller) -> Subscriber:
        """Register the socket of a caller admission has just verified."""
        subscriber = Subscriber(caller, queue_size=self._send_queue_size, verified_at=self._clock())
        self._by_user.setdefault(caller.user_id, set()).add(subscriber)
        WEBSOCKET_CONNECTIONS.inc()
        return subscriber

    def detach(self, subscriber: Subscriber) -> None:
        """Forget a socket that has closed."""
        sockets = self._by_user.get(subscriber.caller.user_id)
        if sockets is None or subscriber not in sockets:
            return
        sockets.discard(subscriber)
        if not sockets:
            del self._by_user[subscriber.caller.user_id]
        WEBSOCKET_CONNECTIONS.dec()

    def subscribers(self) -> list[Subscriber]:
        """Every open socket."""
        return [subscriber for sockets in self._by_user.values() for subscriber in sockets]

    def deliver(self, push: Push) -> None:
        """Queue the message for every socket of its recipients, and nobody else's."""
        for user_id in push.recipients:
            for subscriber in self._by_user.get(user_id, ()):
                subscriber.offer(push)

    async def check_tokens(self) -> None:
        """Close the sockets whose token has expired or been revoked (one Redis round trip)."""
        now = self._clock()
        live: list[Subscriber] = []
        for subscriber in self.subscribers():
            if now >= subscriber.caller.expires_at:
                subscriber.close(TOKEN_EXPIRED)
            elif not subscriber.closing.done():
                live.append(subscriber)
        if not live:
            return
        unique = {subscriber.caller.token_id: subscriber.caller for subscriber in live}
        try:
            revoked = await self._revocations.revoked(list(unique.values()))
        except Exception as error:
            # Whatever failed, the tokens are unchecked: after the grace period their sockets
            # close, as admission answers 503 rather than accept.
            log.warning("websocket.revocation_check_failed", error_type=type(error).__name__)
            for subscriber in live:
                if now - subscriber.verified_at >= self._revocation_grace_s:
                    subscriber.close(REVOCATION_UNCHECKED)
            return
        for subscriber in live:
            if subscriber.caller.token_id in revoked:
                subscriber.close(TOKEN_REVOKED)
            else:
                subscriber.verified_at = now

    def start(self) -> None:
        """Check the tokens of the open sockets every `check_interval_s`, in the background."""
        self._watching = asyncio.create_task(self._watch(), name="websocket-token-watch")

    async def stop(self) -> None:
        """Stop checking and close every socket still open (1001, going away)."""
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)
            self._watching = None
        for subscriber in self.subscribers():
            subscriber.close(GOING_AWAY)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_interval_s)
            await self.check_tokens()
