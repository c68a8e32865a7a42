"""OpenTelemetry tracing: one TracerProvider per process, W3C trace context on every hop.

Every process creates spans whether or not anything exports them: a span gives each log
line its `trace_id` (taskmesh_chassis.logging), and the trace context it forwards lets the
next process continue the same trace. Spans leave the process only when
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set: then a
batch span processor sends them over OTLP/gRPC. The exporter, the batch processor and the
sampler read the other standard `OTEL_*` variables themselves (docs/tracing.md).

Propagation is W3C Trace Context only (`traceparent`, `tracestate`), whatever
`OTEL_PROPAGATORS` says: the gateway reads it from HTTP headers, the gRPC interceptors
carry it in metadata, events carry it in their envelope and message headers. Baggage is
deliberately not propagated: a client could otherwise make every service carry its data.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from typing import Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from taskmesh_chassis.settings import BaseServiceSettings

TRACEPARENT_HEADER: Final = "traceparent"
TRACESTATE_HEADER: Final = "tracestate"
SERVICE_NAME_PREFIX: Final = "taskmesh-"

PROPAGATOR: Final = TraceContextTextMapPropagator()
"""The one propagator of the suite: W3C Trace Context."""

_ID_GENERATOR: Final = RandomIdGenerator()
_configure_lock = threading.Lock()
_provider: TracerProvider | None = None


def get_tracer(name: str) -> trace.Tracer:
    """A tracer of the process's provider (it follows `configure_tracing`, even if later)."""
    return trace.get_tracer(name)


def default_instance_id(port: int) -> str:
    """`host:port`: tells apart the instances of a service, on one machine or several."""
    return f"{socket.gethostname()}:{port}"


def otlp_exporter(settings: BaseServiceSettings) -> SpanExporter | None:
    """The OTLP/gRPC span exporter the settings ask for, or None when no endpoint is set.

    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` wins over `OTEL_EXPORTER_OTLP_ENDPOINT`, as in every
    OpenTelemetry SDK. An `http://` endpoint is reached without TLS; headers, timeout,
    compression and certificates come from the other `OTEL_EXPORTER_OTLP_*` variables.
    """
    endpoint = settings.otel_exporter_otlp_traces_endpoint or settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return None
    return OTLPSpanExporter(endpoint=endpoint)


def build_tracer_provider(
    service: str,
    *,
    instance: str,
    settings: BaseServiceSettings,
    exporter: SpanExporter | None = None,
) -> TracerProvider:
    """A provider naming the process `taskmesh-<service>`, exporting to `exporter` if any.

    Without an exporter its spans are still created (with trace and span ids) and simply
    dropped when they end. The sampler is the SDK's: `OTEL_TRACES_SAMPLER` and
    `OTEL_TRACES_SAMPLER_ARG`, parent-based always-on by default. A span the sampler drops
    still has its ids, so log lines keep their `trace_id` at any sampling rate.
    `OTEL_RESOURCE_ATTRIBUTES` adds resource attributes; the service name, instance id and
    environment set here take precedence over it.
    """
    resource = Resource.create(
        {
            "service.name": f"{SERVICE_NAME_PREFIX}{service}",
            "service.namespace": "taskmesh",
            "service.instance.id": instance,
            "deployment.environment.name": settings.environment,
        }
    )
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing(
    service: str, *, instance: str, settings: BaseServiceSettings
) -> TracerProvider:
    """Install the process's tracer provider (exporting over OTLP if configured); return it.

    A process is one service, so the first call configures it and later calls return that
    provider unchanged (an app built twice in one test process, a service served twice).
    """
    global _provider
    with _configure_lock:
        if _provider is None:
            provider = build_tracer_provider(
                service, instance=instance, settings=settings, exporter=otlp_exporter(settings)
            )
            trace.set_tracer_provider(provider)
            if trace.get_tracer_provider() is not provider:
                raise RuntimeError("another TracerProvider was installed before taskmesh's")
            _provider = provider
        return _provider


def flush_spans(timeout_ms: int = 5_000) -> bool:
    """Export the spans that ended but wait in the batch; tell whether all went in time."""
    return _provider.force_flush(timeout_ms) if _provider is not None else True


def shutdown_tracing() -> None:
    """Flush and stop the exporter; spans created afterwards are no longer exported.

    The SDK also does this at interpreter exit; a process calls it explicitly once it has
    stopped serving so that the last spans leave before anything else can go wrong.
    """
    if _provider is not None:
        _provider.shutdown()


def trace_headers(context: Context | None = None) -> dict[str, str]:
    """The `traceparent` (and `tracestate`, if any) of `context`, by default the current one.

    Empty when there is no valid span in it.
    """
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=context)
    return carrier


def current_traceparent() -> str | None:
    """The `traceparent` of the current span, or None outside any span."""
    return trace_headers().get(TRACEPARENT_HEADER)


def context_from_headers(headers: Mapping[str, str]) -> Context:
    """The context a `traceparent`/`tracestate` pair describes, to start child spans in.

    An absent or invalid `traceparent` gives an empty context: a span started in it starts a
    new trace. Keys are matched in lower case (gRPC metadata and AMQP headers are).
    """
    carrier = {key.lower(): value for key, value in headers.items()}
    return PROPAGATOR.extract(carrier)


def unsampled_span() -> trace.Span:
    """A span with fresh ids that nothing records or exports, for work not worth a trace.

    Log lines inside it still carry its ids; what it calls is told not to sample either.
    """
    return trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=_ID_GENERATOR.generate_trace_id(),
            span_id=_ID_GENERATOR.generate_span_id(),
            is_remote=False,
            trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT),
        )
    )


def current_trace_ids() -> tuple[str, str] | None:
    """The current span's (trace_id, span_id) in hex, or None outside any valid span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return trace.format_trace_id(span_context.trace_id), trace.format_span_id(span_context.span_id)
