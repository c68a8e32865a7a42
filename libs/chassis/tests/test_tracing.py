"""The process's tracing: provider, resource, sampling, propagation helpers, OTLP export."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.trace import SpanKind
from taskmesh_chassis.settings import BaseServiceSettings
from taskmesh_chassis.testing import capture_spans, serving_otlp_receiver
from taskmesh_chassis.tracing import (
    build_tracer_provider,
    configure_tracing,
    context_from_headers,
    current_traceparent,
    get_tracer,
    otlp_exporter,
    trace_headers,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def settings(**values: str) -> BaseServiceSettings:
    """Settings with no OTLP endpoint unless given, whatever this environment says."""
    return BaseServiceSettings(
        **{"otel_exporter_otlp_endpoint": "", "otel_exporter_otlp_traces_endpoint": "", **values}
    )


def test_without_an_endpoint_nothing_is_exported() -> None:
    assert otlp_exporter(settings()) is None


@pytest.mark.parametrize(
    "variable", ["otel_exporter_otlp_endpoint", "otel_exporter_otlp_traces_endpoint"]
)
def test_either_endpoint_variable_turns_otlp_export_on(variable: str) -> None:
    exporter = otlp_exporter(settings(**{variable: "http://127.0.0.1:4317"}))
    assert isinstance(exporter, OTLPSpanExporter)
    exporter.shutdown()


def test_the_endpoint_is_read_from_the_standard_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    assert BaseServiceSettings().otel_exporter_otlp_endpoint == "http://collector:4317"


def test_the_resource_names_the_service_its_instance_and_environment() -> None:
    provider = build_tracer_provider(
        "tasks", instance="host-1:50053", settings=settings(environment="test")
    )
    attributes = provider.resource.attributes
    assert attributes["service.name"] == "taskmesh-tasks"
    assert attributes["service.namespace"] == "taskmesh"
    assert attributes["service.instance.id"] == "host-1:50053"
    assert attributes["deployment.environment.name"] == "test"
    provider.shutdown()


def test_a_span_the_sampler_drops_still_has_ids_for_the_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    provider = build_tracer_provider("tasks", instance="i", settings=settings())
    with provider.get_tracer("test").start_as_current_span("dropped") as span:
        assert not span.is_recording()
        assert span.get_span_context().is_valid
        traceparent = current_traceparent()
    assert traceparent is not None
    # The sampled flag is off, so the next process drops its spans too.
    assert int(traceparent.rsplit("-", 1)[1], 16) & 0x01 == 0
    provider.shutdown()


def test_the_first_configuration_of_a_process_stays() -> None:
    first = configure_tracing("tasks", instance="a", settings=settings())
    assert configure_tracing("users", instance="b", settings=settings()) is first
    assert trace.get_tracer_provider() is first


def test_trace_headers_describe_the_current_span_and_round_trip() -> None:
    spans = capture_spans()
    with get_tracer("test").start_as_current_span(
        "outer",
        context=context_from_headers({"TraceParent": TRACEPARENT, "tracestate": "vendor=1"}),
    ):
        headers = trace_headers()
    [outer] = spans.named("outer")
    assert outer.context is not None
    assert headers == {
        "traceparent": f"00-{TRACE_ID}-{outer.context.span_id:016x}-01",
        "tracestate": "vendor=1",
    }
    assert trace_headers() == {}  # outside any span
    assert current_traceparent() is None


def test_an_invalid_traceparent_starts_a_new_trace() -> None:
    spans = capture_spans()
    with get_tracer("test").start_as_current_span(
        "fresh", context=context_from_headers({"traceparent": "00-garbage-01"})
    ):
        pass
    [fresh] = spans.named("fresh")
    assert fresh.parent is None


def test_spans_are_exported_over_otlp_when_an_endpoint_is_set() -> None:
    with serving_otlp_receiver() as (receiver, endpoint):
        configured = settings(otel_exporter_otlp_endpoint=endpoint)
        provider = build_tracer_provider(
            "tasks", instance="i", settings=configured, exporter=otlp_exporter(configured)
        )
        tracer = provider.get_tracer("test")
        with (
            tracer.start_as_current_span(
                "parent", context=context_from_headers({"traceparent": TRACEPARENT})
            ),
            tracer.start_as_current_span("child", kind=SpanKind.CLIENT),
        ):
            pass
        assert provider.force_flush(10_000)
        provider.shutdown()
        received = {span.name: span for span in receiver.spans()}
    assert set(received) == {"parent", "child"}
    parent, child = received["parent"], received["child"]
    assert {parent.service, child.service} == {"taskmesh-tasks"}
    assert {parent.trace_id, child.trace_id} == {TRACE_ID}
    assert parent.parent_span_id == "00f067aa0ba902b7"
    assert child.parent_span_id == parent.span_id
    assert (parent.kind, child.kind) == ("INTERNAL", "CLIENT")
