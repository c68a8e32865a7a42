"""The EVENTS_* variables, for the settings class of every process that publishes or consumes.

A service adds them to its one settings object by inheritance:

    class NotificationsSettings(GrpcServiceSettings, EventSettings): ...
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from taskmesh_chassis.events.retry import RetryPolicy
from taskmesh_chassis.events.topology import DEFAULT_DELIVERY_LIMIT, DEFAULT_EXCHANGE, EventTopology


class EventSettings(BaseSettings):
    """How a process uses the event backbone; the defaults suit every service."""

    events_exchange: str = DEFAULT_EXCHANGE
    # Deliveries a consumer handles at once (per service instance).
    events_prefetch: int = Field(default=32, ge=1, le=1000)
    # The wait before each retry of a failing event, as a JSON list: `[1, 5, 30, 120]`.
    events_retry_delays_s: tuple[float, ...] = RetryPolicy().delays_s
    events_delivery_limit: int = Field(default=DEFAULT_DELIVERY_LIMIT, ge=1)

    @property
    def event_topology(self) -> EventTopology:
        """The exchange and queue names these settings select."""
        return EventTopology(exchange=self.events_exchange)

    @property
    def retry_policy(self) -> RetryPolicy:
        """The consumers' retry policy."""
        return RetryPolicy(delays_s=self.events_retry_delays_s)
