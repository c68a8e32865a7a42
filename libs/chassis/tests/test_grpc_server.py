from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY
from taskmesh_chassis.errors import FieldError, field_errors_from_metadata
from taskmesh_chassis.grpc_server import GrpcServer
from taskmesh_chassis.testing import (
    capture_logs,
    capture_spans,
    list_services,
    parent_id_hex,
    span_id_hex,
    trace_id_hex,
)

EchoCall = Callable[[grpc.aio.Channel, str], Callable[..., Awaitable[list[bytes]]]]
ECHO = "test.v1.Echo"


async def test_health_check_answers_serving_for_each_service_and_the_server(
    echo_channel: grpc.aio.Channel,
) -> None:
    health = health_pb2_grpc.HealthStub(echo_channel)
    for service in ["", ECHO]:
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_check_of_unknown_service_is_not_found(
    echo_channel: grpc.aio.Channel,
) -> None:
    health = health_pb2_grpc.HealthStub(echo_channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await health.Check(health_pb2.HealthCheckRequest(service="test.v1.Nope"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_services(echo_channel: grpc.aio.Channel) -> None:
    services = await list_services(echo_channel)
    assert {ECHO, "grpc.health.v1.Health"} <= set(services)


async def test_stopping_reports_not_serving(echo_server: GrpcServer) -> None:
    await echo_server.stop(0)
    answer = await echo_server.health.Check(health_pb2.HealthCheckRequest(service=ECHO), None)
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_successful_call_of_every_kind_answers(
    echo_channel: grpc.aio.Channel, echo_call: EchoCall, kind: str
) -> None:
    responses = await echo_call(echo_channel, kind)(b"hello")
    assert responses
    assert b"hello" in b"".join(responses)


async def test_domain_error_becomes_grpc_status(
    echo_channel: grpc.aio.Channel, echo_call: EchoCall, kind: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await echo_call(echo_channel, kind)(b"not-found")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "no such echo"


async def test_unknown_exception_hides_details(
    echo_channel: grpc.aio.Channel, echo_call: EchoCall, kind: str
) -> None:
    logs = capture_logs("test")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await echo_call(echo_channel, kind)(b"crash")
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error"
    assert "db-7.internal" not in (raised.value.debug_error_string() or "")
    [logged] = logs.events("rpc.unhandled_exception")
    assert "RuntimeError: connection to db-7.internal:27017 refused" in logged["exception"]


async def test_invalid_argument_sends_its_field_errors(echo_channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await echo_channel.unary_unary(f"/{ECHO}/Unary")(b"invalid")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    errors = field_errors_from_metadata(raised.value.trailing_metadata() or ())
    assert errors == [FieldError(("task", "title"), "must not be empty")]


async def test_database_down_becomes_unavailable(echo_channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await echo_channel.unary_unary(f"/{ECHO}/Unary")(b"db-down")
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "db-7" not in (raised.value.details() or "")


async def test_status_set_by_the_handler_before_raising_is_kept(
    echo_channel: grpc.aio.Channel,
) -> None:
    logs = capture_logs("test")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await echo_channel.unary_unary(f"/{ECHO}/Unimplemented")(b"x")
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert logs.events("rpc.unhandled_exception") == []


async def test_request_id_from_metadata_reaches_log_lines(
    echo_channel: grpc.aio.Channel, echo_call: EchoCall, kind: str
) -> None:
    logs = capture_logs("test")
    await echo_call(echo_channel, kind)(b"hi", metadata=(("x-request-id", "req-123"),))
    [handler_line] = logs.events("echo.called")
    [access_line] = logs.events("rpc.handled")
    assert handler_line["request_id"] == "req-123"
    assert access_line["request_id"] == "req-123"


async def test_request_id_is_generated_when_the_caller_sent_none(
    echo_channel: grpc.aio.Channel,
) -> None:
    logs = capture_logs("test")
    await echo_channel.unary_unary(f"/{ECHO}/Unary")(b"hi")
    [handler_line] = logs.events("echo.called")
    [access_line] = logs.events("rpc.handled")
    assert len(handler_line["request_id"]) == 32
    assert access_line["request_id"] == handler_line["request_id"]


async def test_unsafe_request_id_is_replaced(echo_channel: grpc.aio.Channel) -> None:
    logs = capture_logs("test")
    await echo_channel.unary_unary(f"/{ECHO}/Unary")(b"hi", metadata=(("x-request-id", "a b"),))
    [access_line] = logs.events("rpc.handled")
    assert access_line["request_id"] != "a b"


async def test_caller_identity_and_trace_reach_the_handler(
    echo_channel: grpc.aio.Channel, echo_service: Any
) -> None:
    logs = capture_logs("test")
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    metadata = (("x-user-id", "665f1c2e9b1e8a0012345678"), ("x-user-role", "admin"))
    await echo_channel.unary_unary(f"/{ECHO}/Unary")(
        b"hi", metadata=(*metadata, ("traceparent", traceparent))
    )
    [request] = echo_service.seen_requests
    assert (request.user_id, request.user_role) == ("665f1c2e9b1e8a0012345678", "admin")
    [line] = logs.events("echo.called")
    assert line["user_id"] == "665f1c2e9b1e8a0012345678"
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_the_rpc_runs_in_a_server_span_continuing_the_callers_trace(
    echo_channel: grpc.aio.Channel, echo_call: EchoCall, kind: str, echo_service: Any
) -> None:
    spans = capture_spans()
    logs = capture_logs("test")
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    await echo_call(echo_channel, kind)(
        b"hi", metadata=(("traceparent", f"00-{trace_id}-{parent_id}-01"),)
    )
    [span] = [span for span in spans.finished() if span.name.startswith(f"{ECHO}/")]
    assert span.kind == SpanKind.SERVER
    assert (trace_id_hex(span), parent_id_hex(span)) == (trace_id, parent_id)
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]
    # What the handler sees, forwards and logs names its own span.
    [request] = echo_service.seen_requests
    assert request.traceparent is not None
    assert request.traceparent.split("-")[1:3] == [trace_id, span_id_hex(span)]
    for event in ("echo.called", "rpc.handled"):
        [line] = logs.events(event)
        assert (line["trace_id"], line["span_id"]) == (trace_id, span_id_hex(span))


async def test_a_call_without_trace_context_starts_a_trace(echo_channel: grpc.aio.Channel) -> None:
    spans = capture_spans()
    logs = capture_logs("test")
    await echo_channel.unary_unary(f"/{ECHO}/Unary")(b"hi")
    [span] = spans.named(f"{ECHO}/Unary")
    assert parent_id_hex(span) is None
    [line] = logs.events("rpc.handled")
    assert line["trace_id"] == trace_id_hex(span)


async def test_server_faults_mark_the_span_as_an_error_and_caller_faults_do_not(
    echo_channel: grpc.aio.Channel,
) -> None:
    spans = capture_spans()
    unary = echo_channel.unary_unary(f"/{ECHO}/Unary")
    for request in (b"crash", b"not-found"):
        with pytest.raises(grpc.aio.AioRpcError):
            await unary(request)
    crashed, not_found = spans.named(f"{ECHO}/Unary")
    assert (crashed.status.status_code, crashed.status.description) == (
        StatusCode.ERROR,
        "INTERNAL",
    )
    assert not_found.status.status_code == StatusCode.UNSET
    assert not_found.attributes is not None
    assert not_found.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]


async def test_health_checks_get_no_span(echo_channel: grpc.aio.Channel) -> None:
    spans = capture_spans()
    await health_pb2_grpc.HealthStub(echo_channel).Check(health_pb2.HealthCheckRequest())
    assert spans.finished() == []


async def test_request_context_does_not_leak_into_the_next_call(
    echo_channel: grpc.aio.Channel, echo_service: Any
) -> None:
    unary = echo_channel.unary_unary(f"/{ECHO}/Unary")
    await unary(b"hi", metadata=(("x-user-id", "someone"),))
    await unary(b"hi")
    assert echo_service.seen_requests[1].user_id is None


async def test_access_log_line_names_method_code_and_duration(
    echo_channel: grpc.aio.Channel, echo_call: EchoCall, kind: str
) -> None:
    logs = capture_logs("test")
    with pytest.raises(grpc.aio.AioRpcError):
        await echo_call(echo_channel, kind)(b"not-found")
    [line] = logs.events("rpc.handled")
    assert line["method"].startswith(f"/{ECHO}/")
    assert line["code"] == "NOT_FOUND"
    assert line["duration_ms"] >= 0
    assert line["level"] == "info"


async def test_rpc_metrics_count_calls_by_method_and_code(echo_channel: grpc.aio.Channel) -> None:
    labels = {"grpc_service": ECHO, "grpc_method": "Unary", "grpc_code": "NOT_FOUND"}
    before = REGISTRY.get_sample_value("grpc_server_handled_total", labels) or 0.0
    with pytest.raises(grpc.aio.AioRpcError):
        await echo_channel.unary_unary(f"/{ECHO}/Unary")(b"not-found")
    assert REGISTRY.get_sample_value("grpc_server_handled_total", labels) == before + 1
    latency = {"grpc_service": ECHO, "grpc_method": "Unary"}
    assert (REGISTRY.get_sample_value("grpc_server_handling_seconds_count", latency) or 0) >= 1


def test_connections_are_aged_out_so_clients_spread_over_new_replicas() -> None:
    from taskmesh_chassis.grpc_server import SERVER_OPTIONS

    options = dict(SERVER_OPTIONS)
    assert 0 < options["grpc.max_connection_age_ms"] <= 600_000
    assert options["grpc.max_connection_age_grace_ms"] >= 10_000
