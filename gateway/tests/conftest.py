"""Fixtures for the gateway core: an app with stand-in service stubs and real local gRPC servers.

`create_app` is used as `main.run` uses it; ASGITransport runs no lifespan, so the `app`
fixture puts hand-written stubs on `app.state.clients`, and the readiness tests that need the
real connections run the lifespan themselves (`lifespan_app`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from typing import Any

import grpc
import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, WebSocket
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import BaseModel, ConfigDict
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_chassis.identity import Caller
from taskmesh_chassis.testing import drop_connection, find_free_port
from taskmesh_gateway.admission import Admission
from taskmesh_gateway.app import create_app
from taskmesh_gateway.clients import SERVICE_DESCRIPTORS, ServiceClients
from taskmesh_gateway.login_guard import LoginAttempt, LoginLocked
from taskmesh_gateway.rate_limits import Quota, RateLimitPolicy
from taskmesh_gateway.settings import GatewaySettings
from taskmesh_gateway.task_list_cache import CachedList

ALLOWED_ORIGIN = "https://app.taskmesh.test"


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    """The error a grpc.aio stub raises when the call ends with `code`."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class StubService:
    """Stands in for any service stub: every RPC records its request and answers `reply`.

    After `fail_with`, every RPC raises that gRPC status instead, as the real stub would.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.error: grpc.aio.AioRpcError | None = None

    def fail_with(self, code: grpc.StatusCode, details: str = "") -> None:
        """Make every later call fail with this status."""
        self.error = rpc_error(code, details)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        async def call(request: Any, **_: Any) -> Any:
            self.requests.append((method, request))
            if self.error is not None:
                raise self.error
            return tasks_pb2.Task(id=getattr(request, "task_id", ""))

        return call


def stub_clients() -> ServiceClients:
    """ServiceClients whose stubs are `StubService`s and that hold no channel."""
    return ServiceClients(
        auth=StubService(),
        users=StubService(),
        tasks=StubService(),
        notifications=StubService(),
        analytics=StubService(),
        channels={},
    )


class Note(BaseModel):
    """The JSON body of the probe route."""

    model_config = ConfigDict(extra="forbid")

    title: str


probe_router = APIRouter(prefix="/_probe")
"""Routes that exercise the core (errors, bodies, service calls) without the API routers."""


@probe_router.post("/notes")
async def echo_note(note: Note) -> Note:
    """Echo a JSON body."""
    return note


@probe_router.get("/notes")
async def list_notes() -> list[Note]:
    """A second method on the same path, from a second route."""
    return []


@probe_router.get("/tasks/{task_id}")
async def read_task(task_id: str, request: Request) -> dict[str, str]:
    """Call the tasks service as an API route would."""
    task = await request.app.state.clients.tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id))
    return {"id": task.id}


@probe_router.websocket("/ws")
async def greet(websocket: WebSocket) -> None:
    """Accept a WebSocket and say hello."""
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


@probe_router.get("/crash")
async def crash() -> None:
    """Fail the way a bug does, with internals in the message."""
    raise RuntimeError("connection to db-7.internal:27017 refused for user gateway")


class OpenGate:
    """Stands in for the Gatekeeper: admits every request, as `caller` (None: anonymous).

    Records the Authorization value and client address of each request it admitted.
    """

    policy = RateLimitPolicy("ip", 20)

    def __init__(self) -> None:
        self.caller: Caller | None = None
        self.admitted: list[tuple[str | None, str]] = []

    async def admit(self, authorization: str | None, client_ip: str) -> Admission:
        self.admitted.append((authorization, client_ip))
        return Admission(self.caller, None, Quota(self.policy, True, 19, 60))


class InMemoryLoginGuard:
    """Stands in for the LoginGuard: counts attempts per email, locks out at `max_failures`."""

    def __init__(self, max_failures: int = 5) -> None:
        self.max_failures = max_failures
        self.attempts: dict[str, list[LoginAttempt]] = {}

    async def begin(self, email: str) -> LoginAttempt:
        counted = self.attempts.setdefault(email.strip().lower(), [])
        if len(counted) >= self.max_failures:
            raise LoginLocked(900)
        attempt = LoginAttempt(email.strip().lower(), str(len(counted)))
        counted.append(attempt)
        return attempt

    async def discount(self, attempt: LoginAttempt) -> None:
        self.attempts[attempt.key].remove(attempt)

    def failures(self) -> int:
        return sum(len(counted) for counted in self.attempts.values())


class InMemoryMeCache:
    """Stands in for the MeCache."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, bytes]] = {}

    async def get(self, caller: Caller) -> bytes | None:
        return self.entries.get(caller.user_id, {}).get(caller.token_id)

    async def put(self, caller: Caller, body: bytes) -> None:
        self.entries.setdefault(caller.user_id, {})[caller.token_id] = body

    async def drop(self, user_id: str) -> None:
        self.entries.pop(user_id, None)


class InMemoryTaskListCache:
    """Stands in for the TaskListCache, with its generations; records each invalidation."""

    def __init__(self) -> None:
        self.generations: dict[str, int] = {}
        self.entries: dict[tuple[str, int, str], bytes] = {}
        self.invalidated: list[set[str]] = []

    async def lookup(self, user_id: str, query_key: str) -> CachedList:
        generation = self.generations.get(user_id, 0)
        return CachedList(
            str(generation).encode(), self.entries.get((user_id, generation, query_key))
        )

    async def fill(self, user_id: str, generation: bytes, query_key: str, body: bytes) -> None:
        self.entries[(user_id, int(generation), query_key)] = body

    async def invalidate(self, user_ids: Iterable[str]) -> None:
        users = set(user_ids)
        self.invalidated.append(users)
        for user_id in users:
            self.generations[user_id] = self.generations.get(user_id, 0) + 1


@pytest.fixture
def list_cache() -> InMemoryTaskListCache:
    """An in-memory GET /api/v1/tasks cache."""
    return InMemoryTaskListCache()


@pytest.fixture
def open_gate() -> OpenGate:
    """Admission that lets everything in (set `.caller` to sign a request in)."""
    return OpenGate()


@pytest.fixture
def login_guard() -> InMemoryLoginGuard:
    """An in-memory login brute-force guard."""
    return InMemoryLoginGuard()


@pytest.fixture
def me_cache() -> InMemoryMeCache:
    """An in-memory /auth/me cache."""
    return InMemoryMeCache()


@pytest.fixture
def settings() -> GatewaySettings:
    """Settings for a test app: fixed instance name, one CORS origin, short readiness timeout."""
    return GatewaySettings(
        environment="test",
        instance_name="gateway-test",
        cors_origins=[ALLOWED_ORIGIN],
        readiness_timeout_s=1.0,
    )


@pytest.fixture
def app(settings: GatewaySettings, open_gate: OpenGate) -> FastAPI:
    """The gateway app with the probe routes, stand-in stubs and an admission letting all in."""
    app = create_app(settings)
    app.include_router(probe_router)
    app.state.clients = stub_clients()
    app.state.gatekeeper = open_gate
    return app


@pytest.fixture
def tasks_service(app: FastAPI) -> StubService:
    """The stand-in of the tasks service stub."""
    stub: StubService = app.state.clients.tasks
    return stub


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling the app in-process."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


class RecordingHealth(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """The standard health service answering SERVING for `serving`; records call metadata."""

    def __init__(self, serving: Iterable[str]) -> None:
        self.serving = set(serving)
        self.metadata: list[dict[str, str]] = []

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        """Answer SERVING for a served name, else NOT_FOUND as grpc's HealthServicer does."""
        self.metadata.append(dict(context.invocation_metadata() or ()))
        if request.service not in self.serving:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


class HealthServers:
    """Starts real grpc.aio servers on 127.0.0.1 that serve only the standard health service."""

    def __init__(self) -> None:
        self._servers: list[grpc.aio.Server] = []

    async def start(self, serving: Iterable[str]) -> tuple[str, RecordingHealth]:
        """Serve health for the given service names; return the target and the servicer."""
        health = RecordingHealth(serving)
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._servers.append(server)
        return f"127.0.0.1:{port}", health

    async def stop(self) -> None:
        """Stop every server started."""
        for server in self._servers:
            await server.stop(None)


@pytest.fixture
async def health_servers() -> AsyncIterator[HealthServers]:
    """Real health-only gRPC servers, stopped after the test."""
    servers = HealthServers()
    yield servers
    await servers.stop()


@pytest.fixture
def all_services() -> list[str]:
    """The full gRPC name of every service the gateway calls."""
    return [service.full_name for service in SERVICE_DESCRIPTORS.values()]


@pytest.fixture
def unused_target() -> str:
    """A gRPC target that nothing listens on."""
    return f"127.0.0.1:{find_free_port()}"


LifespanClient = Callable[[GatewaySettings], Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def started_gateway() -> AsyncIterator[LifespanClient]:
    """Start an app with its lifespan (real channels, Redis, RabbitMQ); yield a client factory."""
    async with AsyncExitStack() as stack:

        async def start(settings: GatewaySettings) -> httpx.AsyncClient:
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://gateway")
            )

        yield start


DropConnection = Callable[[str], Awaitable[None]]


@pytest.fixture
def drop_broker_connection() -> DropConnection:
    """Have the broker close a named client connection, as a network failure would."""

    async def drop(connection_name: str) -> None:
        await asyncio.to_thread(drop_connection, connection_name)

    return drop
