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
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pymongo import AsyncMongoClient

from taskmesh_chassis.context import REQUEST_ID_KEY
from taskmesh_chassis.logging import configure_logging
from taskmesh_chassis.service import GrpcService, SettingsT
from taskmesh_chassis.settings import GrpcServiceSettings


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
