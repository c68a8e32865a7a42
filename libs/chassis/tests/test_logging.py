from __future__ import annotations

import io
import logging
import re

import structlog
from taskmesh_chassis.context import RequestContext, bind_request
from taskmesh_chassis.logging import configure_logging
from taskmesh_chassis.testing import capture_logs, capture_spans, span_id_hex, trace_id_hex
from taskmesh_chassis.tracing import get_tracer

log = structlog.get_logger("test")


def test_log_line_is_one_json_object_with_timestamp_level_event_service() -> None:
    logs = capture_logs("tasks")
    log.info("task.created", task_id="t1")
    [line] = logs.lines()
    assert line["event"] == "task.created"
    assert line["task_id"] == "t1"
    assert line["level"] == "info"
    assert line["service"] == "tasks"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"])


def test_request_context_appears_in_log_lines() -> None:
    logs = capture_logs("tasks")
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    bind_request(RequestContext("req-9", user_id="u9", traceparent=traceparent))
    log.info("task.read")
    [line] = logs.lines()
    assert (line["request_id"], line["user_id"], line["trace_id"]) == (
        "req-9",
        "u9",
        "4bf92f3577b34da6a3ce929d0e0e4736",
    )


def test_lines_inside_a_span_carry_its_trace_and_span_ids() -> None:
    spans = capture_spans()
    logs = capture_logs("tasks")
    with get_tracer("test").start_as_current_span("work"):
        log.info("task.read")
        logging.getLogger("pymongo.connection").warning("pool cleared")
    [span] = spans.named("work")
    for line in logs.lines():
        assert (line["trace_id"], line["span_id"]) == (trace_id_hex(span), span_id_hex(span))


def test_stdlib_records_take_the_same_route() -> None:
    logs = capture_logs("tasks")
    bind_request(RequestContext("req-10"))
    logging.getLogger("pymongo.connection").warning("pool cleared for %s", "db:27017")
    [line] = logs.lines()
    assert line["event"] == "pool cleared for db:27017"
    assert line["logger"] == "pymongo.connection"
    assert line["level"] == "warning"
    assert (line["service"], line["request_id"]) == ("tasks", "req-10")


def test_secret_fields_are_redacted() -> None:
    logs = capture_logs("auth")
    log.info("login.attempt", email="a@example.com", password="hunter22", refresh_token="rt")
    [line] = logs.lines()
    assert line["email"] == "a@example.com"
    assert (line["password"], line["refresh_token"]) == ("[redacted]", "[redacted]")


def test_records_below_the_level_are_dropped() -> None:
    logs = capture_logs("tasks", level="WARNING")
    log.info("too.quiet")
    logging.getLogger("grpc").info("too quiet as well")
    log.warning("loud.enough")
    assert [line["event"] for line in logs.lines()] == ["loud.enough"]


def test_exception_traceback_is_part_of_the_line() -> None:
    logs = capture_logs("tasks")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("task.failed")
    [line] = logs.lines()
    assert "ValueError: boom" in line["exception"]


def test_console_format_is_readable_text() -> None:
    stream = io.StringIO()
    configure_logging("tasks", "INFO", "console", stream=stream)
    log.info("task.created", task_id="t1")
    output = stream.getvalue()
    assert "task.created" in output
    assert "task_id" in output
    assert not output.startswith("{")


def test_driver_command_logs_stay_silent_even_at_debug() -> None:
    logs = capture_logs("auth", level="DEBUG")
    logging.getLogger("pymongo.command").debug("insert {'token': 'secret-reset-token'}")
    logging.getLogger("aio_pika.channel").debug("publish body=b'secret'")
    logging.getLogger("grpc._cython.cygrpc").debug("Using AsyncIOEngine.POLLER as I/O engine")
    logging.getLogger("taskmesh.debugging").debug("a service's own debug line")
    assert [line["event"] for line in logs.lines()] == ["a service's own debug line"]
