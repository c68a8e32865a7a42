"""Structured logs: one JSON object per line on stdout, from structlog and stdlib alike.

A line written inside a span carries the span's `trace_id` and `span_id`
(taskmesh_chassis.tracing); outside one, the `trace_id` of the bound request, if any.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog
from structlog.types import EventDict, Processor

from taskmesh_chassis.tracing import current_trace_ids


def _add_trace_ids(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """The current span's ids: the `trace_id` of a log line is always the OTel trace's."""
    ids = current_trace_ids()
    if ids is not None:
        event_dict["trace_id"], event_dict["span_id"] = ids
    return event_dict


# What structlog events and stdlib records (grpc, pymongo, uvicorn) both get.
_SHARED_PROCESSORS: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    _add_trace_ids,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
]

# Keys whose values never reach a log line, whatever a caller passes by mistake.
_SECRET_KEY_PARTS = ("password", "secret", "token", "authorization", "cookie")
_REDACTED = "[redacted]"


DATA_BEARING_LOGGERS = ("pymongo.command", "pymongo.connection", "aiormq.connection", "aio_pika")
"""Loggers whose DEBUG records quote stored documents or message bodies."""

GRPC_CORE_LOGGERS = ("grpc._cython", "grpc.aio")
"""gRPC's own DEBUG records come from its C core's callbacks, on any thread and sometimes
while it holds its own locks; letting them reach a handler (whose lock another thread may
hold while it waits on gRPC) can deadlock. They say nothing an operator needs."""


def _redact_secrets(_: Any, __: str, event_dict: EventDict) -> EventDict:
    for key in event_dict:
        if any(part in key.lower() for part in _SECRET_KEY_PARTS):
            event_dict[key] = _REDACTED
    return event_dict


def _add_service(service: str) -> Processor:
    def add_service(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def configure_logging(
    service: str,
    level: str = "INFO",
    fmt: Literal["json", "console"] = "json",
    *,
    stream: TextIO | None = None,
) -> None:
    """Send structlog and stdlib logging through one renderer to `stream` (stdout by default).

    Calling it again replaces the previous configuration (tests capture logs that way).
    """
    renderer: list[Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if fmt == "json"
        else [structlog.dev.ConsoleRenderer()]
    )
    # Everything that varies per call lives in the formatter, not in structlog's own chain,
    # so loggers that structlog cached on first use follow a reconfiguration.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _add_service(service),
            _redact_secrets,
            *renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for previous in root.handlers[:]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Driver command logs carry whole documents (reset tokens, password hashes): never emitted,
    # whatever LOG_LEVEL says. pymongo logs commands at DEBUG only. gRPC's core debug lines stay
    # out too (see GRPC_CORE_LOGGERS).
    for name in (*DATA_BEARING_LOGGERS, *GRPC_CORE_LOGGERS):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    # Uvicorn installs handlers of its own; its records should take the common route instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
