"""Prometheus metrics of the event backbone, in the process's default registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

OUTBOX_BACKLOG = Gauge(
    "taskmesh_outbox_backlog",
    "Events committed to the outbox and not yet confirmed by the broker, as the relay last saw.",
    ["source"],
)
EVENTS_PUBLISHED = Counter(
    "taskmesh_events_published_total",
    "Events the broker confirmed, by type.",
    ["source", "event_type"],
)
PUBLISH_SECONDS = Histogram(
    "taskmesh_event_publish_seconds",
    "Time from publishing an event to the broker's confirm.",
    ["source"],
    buckets=_LATENCY_BUCKETS,
)
OUTBOX_DELAY_SECONDS = Histogram(
    "taskmesh_outbox_delay_seconds",
    "Time from an event's creation to the broker's confirm of it.",
    ["source"],
    buckets=_LAG_BUCKETS,
)
PUBLISH_FAILURES = Counter(
    "taskmesh_event_publish_failures_total",
    "Relay passes that stopped on a broker or database error (the events stay pending).",
    ["source"],
)
EVENTS_CONSUMED = Counter(
    "taskmesh_events_consumed_total",
    "Deliveries handled by a consumer, by outcome: processed, duplicate, retried, dead_lettered.",
    ["service", "event_type", "outcome"],
)
CONSUMER_LAG_SECONDS = Histogram(
    "taskmesh_event_consumer_lag_seconds",
    "Time from an event's creation to the start of its handling.",
    ["service"],
    buckets=_LAG_BUCKETS,
)
HANDLER_SECONDS = Histogram(
    "taskmesh_event_handler_seconds",
    "Time to handle an event and store its effect, by type.",
    ["service", "event_type"],
    buckets=_LATENCY_BUCKETS,
)
EVENT_RETRIES = Counter(
    "taskmesh_event_retries_total",
    "Failed handlings sent to a retry queue, by type.",
    ["service", "event_type"],
)
DEAD_LETTERS = Counter(
    "taskmesh_event_dead_letters_total",
    "Messages sent to the dead-letter queue, by reason.",
    ["service", "reason"],
)
