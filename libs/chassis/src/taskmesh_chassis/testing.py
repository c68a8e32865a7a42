"""Test support for taskmesh services: fixtures, an in-process runner, the service contract.

Used only by tests (it needs pytest and secantusdb, from the workspace's dev group). A
service's `tests/conftest.py` imports the fixtures it uses:

    from taskmesh_chassis.testing import free_port, secantus_url

and its tests subclass `GrpcServiceContract`, which states what every service does.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id
from pymongo import AsyncMongoClient

from taskmesh_chassis.context import REQUEST_ID_KEY, TRACEPARENT_KEY
from taskmesh_chassis.logging import configure_logging
from taskmesh_chassis.service import GrpcService, SettingsT
from taskmesh_chassis.settings import BaseServiceSettings, GrpcServiceSettings
from taskmesh_chassis.tracing import configure_tracing


@pytest.fixture(scope="session")
def secantus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a SecantusDB server shared by the session; tests isolate by database name."""
    from secantus.server import SecantusDBServer

    storage = tmp_path_factory.mktemp("secantus")
    with SecantusDBServer(port=0, storage_path=str(storage)) as server:
        yield str(server.uri)


def find_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return find_free_port()


class CapturedLogs:
    """Log lines written since `capture_logs`, parsed from their JSON."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def lines(self) -> list[dict[str, Any]]:
        """Every line so far, as a dict."""
        return [json.loads(line) for line in self._stream.getvalue().splitlines() if line]

    def events(self, event: str) -> list[dict[str, Any]]:
        """The lines whose `event` is `event`."""
        return [line for line in self.lines() if line.get("event") == event]


def capture_logs(service: str, level: str = "DEBUG") -> CapturedLogs:
    """Configure logging as a service would, but into memory, and return the captured lines."""
    stream = io.StringIO()
    configure_logging(service, level, "json", stream=stream)
    return CapturedLogs(stream)


class CapturedSpans:
    """Spans ended in this process since `capture_spans`."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter = exporter

    def finished(self) -> list[ReadableSpan]:
        """Every span ended so far, in the order they ended."""
        return list(self._exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        """The ended spans called `name`."""
        return [span for span in self.finished() if span.name == name]

    async def wait_for(
        self, name: str, count: int = 1, timeout_s: float = 5.0
    ) -> list[ReadableSpan]:
        """Wait until `count` spans called `name` have ended (some end from callbacks)."""
        deadline = time.monotonic() + timeout_s
        while len(spans := self.named(name)) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"{len(spans)} of {count} spans {name!r} ended within {timeout_s} s")
            await asyncio.sleep(0.01)
        return spans


def trace_id_hex(span: ReadableSpan) -> str:
    """A span's trace id as in `traceparent` and log lines (32 hex digits)."""
    assert span.context is not None
    return format_trace_id(span.context.trace_id)


def span_id_hex(span: ReadableSpan) -> str:
    """A span's own id (16 hex digits)."""
    assert span.context is not None
    return format_span_id(span.context.span_id)


def parent_id_hex(span: ReadableSpan) -> str | None:
    """The id of a span's parent, None for the root of a trace."""
    return format_span_id(span.parent.span_id) if span.parent is not None else None


_SPAN_EXPORTER = InMemorySpanExporter()
_span_capture_installed = False


def capture_spans() -> CapturedSpans:
    """Configure this process's tracing as a service would, keeping the spans in memory.

    The process's provider is the first one configured (taskmesh_chassis.tracing); spans of
    earlier tests are forgotten.
    """
    global _span_capture_installed
    settings = BaseServiceSettings(
        otel_exporter_otlp_endpoint="", otel_exporter_otlp_traces_endpoint=""
    )
    provider = configure_tracing("test", instance="test", settings=settings)
    if not _span_capture_installed:
        provider.add_span_processor(SimpleSpanProcessor(_SPAN_EXPORTER))
        _span_capture_installed = True
    _SPAN_EXPORTER.clear()
    return CapturedSpans(_SPAN_EXPORTER)


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as an OTLP collector received it: the ids in hex, the sender's service name."""

    service: str
    name: str
    kind: str
    """SERVER, CLIENT, PRODUCER, CONSUMER or INTERNAL."""
    trace_id: str
    span_id: str
    parent_span_id: str | None
    attributes: dict[str, Any]


class OtlpReceiver:
    """A stand-in OTLP/gRPC collector: keeps every span exported to it, in memory.

    Serve it with `serving_otlp_receiver`; point an exporter at `http://127.0.0.1:<port>`.
    """

    SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, _: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        """The collector's Export RPC."""
        with self._lock:
            self._requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far."""
        with self._lock:
            requests = list(self._requests)
        received = []
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        received.append(
                            ReceivedSpan(
                                service=str(resource.get("service.name", "")),
                                name=span.name,
                                kind=trace_pb2.Span.SpanKind.Name(span.kind).removeprefix(
                                    "SPAN_KIND_"
                                ),
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex() or None,
                                attributes=_attributes(span.attributes),
                            )
                        )
        return received

    def handler(self) -> grpc.GenericRpcHandler:
        """The gRPC handler serving the collector's trace service."""
        export = grpc.unary_unary_rpc_method_handler(
            self.export,
            request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
            response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(self.SERVICE, {"Export": export})


def _attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values


@contextmanager
def serving_otlp_receiver() -> Iterator[tuple[OtlpReceiver, str]]:
    """Serve an OtlpReceiver on a free local port; yield it and its OTLP endpoint URL."""
    receiver = OtlpReceiver()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((receiver.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield receiver, f"http://127.0.0.1:{port}"
    finally:
        server.stop(0)


async def wait_until_serving(
    channel: grpc.aio.Channel, server_task: asyncio.Task[None], timeout_s: float = 10.0
) -> None:
    """Wait until the server answers SERVING; raise the server's error if it died first."""
    health = health_pb2_grpc.HealthStub(channel)
    async with asyncio.timeout(timeout_s):
        while True:
            if server_task.done():
                server_task.result()
                raise RuntimeError("the service stopped before it served")
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.aio.AioRpcError:
                answer = None
            if answer is not None and answer.status == health_pb2.HealthCheckResponse.SERVING:
                return
            await asyncio.sleep(0.05)


# The service may not listen yet when the channel first connects; grpc's default 1 s
# reconnect backoff would then dominate every test's start-up.
_QUICK_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
]


@asynccontextmanager
async def running_service(
    service: GrpcService[SettingsT], settings: SettingsT
) -> AsyncIterator[grpc.aio.Channel]:
    """Serve `service` in this event loop; yield a channel to it once it reports SERVING."""
    stop = asyncio.Event()
    server_task = asyncio.create_task(service.serve(settings, stop=stop))
    try:
        target = f"{settings.grpc_host}:{settings.grpc_port}"
        async with grpc.aio.insecure_channel(target, options=_QUICK_RECONNECT) as channel:
            await wait_until_serving(channel, server_task)
            yield channel
    finally:
        stop.set()
        await server_task


async def list_services(channel: grpc.aio.Channel) -> list[str]:
    """Ask the server's reflection service which services it serves."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for response in stub.ServerReflectionInfo(iter([request]), timeout=5):
        return [service.name for service in response.list_services_response.service]
    return []


@dataclass(frozen=True)
class ExpectedIndex:
    """An index a collection must have."""

    keys: Sequence[tuple[str, int]]
    unique: bool = False


async def assert_indexes_exist(
    settings: GrpcServiceSettings, collection: str, expected: Sequence[ExpectedIndex]
) -> None:
    """Fail unless the service's database has each expected index on `collection`."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value()
    )
    try:
        indexes = await client[settings.mongodb_database][collection].index_information()
    finally:
        await client.close()
    present = [(list(info["key"]), bool(info.get("unique", False))) for info in indexes.values()]
    for index in expected:
        assert (list(index.keys), index.unique) in present, f"{collection}: {index} missing"


class GrpcServiceContract:
    """What every taskmesh gRPC service does; a service's tests subclass it.

    A subclass names the service (`service`, `full_service_name`), its generated stub class
    and one RPC that is not implemented yet, with a request for it.
    """

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.integration]

    service: ClassVar[GrpcService[Any]]
    full_service_name: ClassVar[str]
    stub_class: ClassVar[type[Any]]
    unimplemented_rpc: ClassVar[tuple[str, Message]]

    async def call_unimplemented_rpc(
        self, channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]]
    ) -> object:
        """Call the RPC named by `unimplemented_rpc`."""
        method, request = self.unimplemented_rpc
        return await getattr(self.stub_class(channel), method)(
            request, metadata=metadata, timeout=5
        )

    @pytest.fixture
    def settings(self, secantus_url: str, free_port: int) -> GrpcServiceSettings:
        """The service's settings, on a free port and a database of its own."""
        settings: GrpcServiceSettings = self.service.settings_cls(
            grpc_port=free_port,
            metrics_port=0,
            mongodb_url=secantus_url,
            mongodb_database_prefix=f"test_{uuid.uuid4().hex[:12]}_",
            shutdown_grace_s=1.0,
        )
        return settings

    @pytest.fixture
    def logs(self) -> CapturedLogs:
        """The service's log lines, captured from before it starts."""
        return capture_logs(self.service.settings_cls.service_name)

    @pytest.fixture
    async def channel(
        self, settings: GrpcServiceSettings, logs: CapturedLogs
    ) -> AsyncIterator[grpc.aio.Channel]:
        """A channel to the service, running in-process against SecantusDB."""
        async with running_service(self.service, settings) as channel:
            yield channel

    async def test_health_check_answers_serving_for_the_service(
        self, channel: grpc.aio.Channel
    ) -> None:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=self.full_service_name)
        answer = await health.Check(request, timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING

    async def test_health_check_answers_serving_for_the_whole_server(
        self, channel: grpc.aio.Channel
    ) -> None:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING

    async def test_reflection_lists_the_service(self, channel: grpc.aio.Channel) -> None:
        assert self.full_service_name in await list_services(channel)

    async def test_rpc_not_implemented_yet_answers_unimplemented(
        self, channel: grpc.aio.Channel
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await self.call_unimplemented_rpc(channel, ())
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED

    async def test_request_id_from_metadata_appears_in_the_access_log(
        self, channel: grpc.aio.Channel, logs: CapturedLogs
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError):
            await self.call_unimplemented_rpc(channel, [(REQUEST_ID_KEY, "contract-req-42")])
        handled = [
            line
            for line in logs.events("rpc.handled")
            if line["method"].startswith(f"/{self.full_service_name}/")
        ]
        assert [line["request_id"] for line in handled] == ["contract-req-42"]
        assert handled[0]["service"] == self.service.settings_cls.service_name
        assert handled[0]["code"] == "UNIMPLEMENTED"

    async def test_the_callers_trace_goes_on_in_a_server_span_and_its_log_lines(
        self, channel: grpc.aio.Channel, logs: CapturedLogs
    ) -> None:
        spans = capture_spans()
        trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        with pytest.raises(grpc.aio.AioRpcError):
            await self.call_unimplemented_rpc(
                channel, [(TRACEPARENT_KEY, f"00-{trace_id}-{parent_id}-01")]
            )
        method, _ = self.unimplemented_rpc
        [span] = await spans.wait_for(f"{self.full_service_name}/{method}")
        assert span.context is not None
        assert span.parent is not None
        assert (span.context.trace_id, span.parent.span_id) == (
            int(trace_id, 16),
            int(parent_id, 16),
        )
        [line] = [
            line
            for line in logs.events("rpc.handled")
            if line["method"] == f"/{self.full_service_name}/{method}"
        ]
        assert (line["trace_id"], line["span_id"]) == (trace_id, f"{span.context.span_id:016x}")


def drop_connection(connection_name: str) -> None:
    """Have the broker close a named client connection, as a network failure would.

    Runs the local broker's `rabbitmqctl` (tests only; its arguments are ours).
    """
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "pid", "client_properties", "-q", "--no-table-headers"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    marker = f'{{"connection_name","{connection_name}"}}'
    pids = [line.split("\t")[0] for line in listing.stdout.splitlines() if marker in line]
    assert len(pids) == 1, f"expected one connection named {connection_name}, found {pids}"
    subprocess.run(  # noqa: S603
        ["rabbitmqctl", "close_connection", pids[0], "taskmesh test: simulated connection loss"],  # noqa: S607
        capture_output=True,
        check=True,
        timeout=60,
    )
