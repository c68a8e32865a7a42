"""The gateway's own Prometheus metrics beyond HTTP (middleware.py) and WebSockets (realtime/).

Every label takes a value from a fixed set, created at import so each series exists from the
start (at 0) and a dashboard's `rate()` has something to work on before the first event:

    taskmesh_cache_requests_total{cache, result}  cache = task_list | me, result = hit | miss
    taskmesh_rate_limited_total{policy}           policy = user | ip | login
    taskmesh_request_records_total{outcome}       outcome = recorded | dropped | shipped | failed
    taskmesh_request_records_buffered             records held (waiting or being published)
    taskmesh_request_record_publish_failures_total  batch publishes that failed (then retried)
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import Counter, Gauge

CacheName = Literal["task_list", "me"]

CACHES: Final[tuple[CacheName, ...]] = ("task_list", "me")
RATE_LIMIT_POLICIES: Final = ("user", "ip", "login")
RECORD_OUTCOMES: Final = ("recorded", "dropped", "shipped", "failed")

CACHE_REQUESTS = Counter(
    "taskmesh_cache_requests_total",
    "Lookups in the gateway's response caches, by cache and result (the X-Cache answered).",
    ["cache", "result"],
)
RATE_LIMITED = Counter(
    "taskmesh_rate_limited_total",
    "Requests refused with 429, by policy: user or ip (rate limits), login (brute-force guard).",
    ["policy"],
)
REQUEST_RECORDS = Counter(
    "taskmesh_request_records_total",
    "Request records by outcome: recorded (buffered), dropped (buffer full, never buffered), "
    "shipped (confirmed by RabbitMQ), failed (buffered but never shipped: lost at shutdown).",
    ["outcome"],
)
REQUEST_RECORDS_BUFFERED = Gauge(
    "taskmesh_request_records_buffered",
    "Request records held by this instance: waiting for the next batch or being published.",
)
REQUEST_RECORD_PUBLISH_FAILURES = Counter(
    "taskmesh_request_record_publish_failures_total",
    "Publishes of a batch of request records that failed (the batch is kept and retried).",
)

for _cache in CACHES:
    for _result in ("hit", "miss"):
        CACHE_REQUESTS.labels(_cache, _result)
for _policy in RATE_LIMIT_POLICIES:
    RATE_LIMITED.labels(_policy)
for _outcome in RECORD_OUTCOMES:
    REQUEST_RECORDS.labels(_outcome)


def count_cache_lookup(cache: CacheName, *, hit: bool) -> None:
    """Count one lookup in `cache` that found (`hit`) or did not find its answer."""
    CACHE_REQUESTS.labels(cache, "hit" if hit else "miss").inc()


def count_rate_limited(policy: str) -> None:
    """Count one request refused by `policy` (a `RateLimitPolicy.name`, or `login`)."""
    RATE_LIMITED.labels(policy).inc()
