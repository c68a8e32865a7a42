"""Idempotency-Key on POST: replays, concurrent duplicates, key reuse, failures; real Redis."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.timestamp_pb2 import Timestamp
from redis.asyncio import Redis
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_chassis.identity import Caller
from taskmesh_gateway import idempotency
from taskmesh_gateway.app import create_app
from taskmesh_gateway.clients import create_redis
from taskmesh_gateway.idempotency import IdempotencyStore, Slot
from taskmesh_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from conftest import InMemoryTaskListCache, OpenGate

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/14"
TASKS = "/api/v1/tasks"
NOW = datetime(2026, 11, 28, 9, 42, 14, tzinfo=UTC)


def timestamp() -> Timestamp:
    result = Timestamp()
    result.FromDatetime(NOW)
    return result


class CountingCall:
    def __init__(self, service: CountingTasksService, request: Any) -> None:
        self._service = service
        self._request = request

    def __await__(self) -> Any:
        return self._service.perform(self._request).__await__()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(("x-affected-user-ids", self._service.user_id))


class CountingTasksService:
    """Creates tasks, counting each effect; can be slowed down or made to fail once."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.created: list[str] = []
        self.delay_s = 0.0
        self.fail_next: grpc.StatusCode | None = None

    def CreateTask(self, request: tasks_pb2.CreateTaskRequest) -> CountingCall:
        return CountingCall(self, request)

    async def perform(self, request: tasks_pb2.CreateTaskRequest) -> tasks_pb2.Task:
        await asyncio.sleep(self.delay_s)
        if self.fail_next is not None:
            code, self.fail_next = self.fail_next, None
            raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")
        task_id = uuid.uuid4().hex[:24]
        self.created.append(task_id)
        return tasks_pb2.Task(
            id=task_id,
            owner_id=self.user_id,
            title=request.task.title,
            status=tasks_pb2.STATUS_TODO,
            priority=tasks_pb2.PRIORITY_MEDIUM,
            created_at=timestamp(),
            updated_at=timestamp(),
            version=1,
        )


class ClientsStandIn:
    def __init__(self, tasks: CountingTasksService) -> None:
        self.tasks = tasks


@pytest.fixture
def user_id() -> str:
    return uuid.uuid4().hex[:24]


@pytest.fixture
def caller(user_id: str) -> Caller:
    return Caller(user_id, "user", "jti", "sid", NOW.timestamp(), NOW.timestamp() + 900, "t")


@pytest.fixture
def service(user_id: str) -> CountingTasksService:
    return CountingTasksService(user_id)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = create_redis(GatewaySettings(redis_url=REDIS_URL))
    yield client
    await client.aclose()


@pytest.fixture
def idempotency_app(
    service: CountingTasksService,
    open_gate: OpenGate,
    caller: Caller,
    list_cache: InMemoryTaskListCache,
    redis: Redis,
) -> FastAPI:
    app = create_app(GatewaySettings(max_upload_bytes=1024))
    app.state.clients = ClientsStandIn(service)
    open_gate.caller = caller
    app.state.gatekeeper = open_gate
    app.state.task_list_cache = list_cache
    app.state.idempotency = IdempotencyStore(redis)
    return app


@pytest.fixture
async def client(idempotency_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=idempotency_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


@pytest.fixture
async def key(redis: Redis, user_id: str) -> AsyncIterator[str]:
    key = str(uuid.uuid4())
    yield key
    await redis.delete(Slot.of(f"user:{user_id}", key).name)


def with_key(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def test_post_without_a_key_is_not_recorded(
    client: httpx.AsyncClient, service: CountingTasksService
) -> None:
    await client.post(TASKS, json={"title": "a"})
    response = await client.post(TASKS, json={"title": "a"})

    assert response.status_code == 201
    assert "idempotent-replayed" not in response.headers
    assert len(service.created) == 2


async def test_malformed_key_is_400(
    client: httpx.AsyncClient, service: CountingTasksService
) -> None:
    response = await client.post(TASKS, json={"title": "a"}, headers=with_key("x" * 256))

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert service.created == []


async def test_repeat_with_the_same_body_replays_the_first_answer_and_acts_once(
    client: httpx.AsyncClient, service: CountingTasksService, key: str
) -> None:
    first = await client.post(TASKS, json={"title": "once"}, headers=with_key(key))
    second = await client.post(TASKS, json={"title": "once"}, headers=with_key(key))

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.content == first.content
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["content-type"] == "application/json"
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert len(service.created) == 1


async def test_concurrent_duplicates_act_once_and_answer_alike(
    client: httpx.AsyncClient, service: CountingTasksService, key: str
) -> None:
    service.delay_s = 0.3

    responses = await asyncio.gather(
        *(client.post(TASKS, json={"title": "race"}, headers=with_key(key)) for _ in range(5))
    )

    assert len(service.created) == 1
    assert {response.status_code for response in responses} == {201}
    assert len({response.content for response in responses}) == 1


async def test_duplicate_still_in_progress_after_the_wait_is_409(
    client: httpx.AsyncClient,
    service: CountingTasksService,
    key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(idempotency, "WAIT_S", 0.1)
    service.delay_s = 0.6

    first = asyncio.create_task(client.post(TASKS, json={"title": "slow"}, headers=with_key(key)))
    await asyncio.sleep(0.1)
    duplicate = await client.post(TASKS, json={"title": "slow"}, headers=with_key(key))
    await first

    assert duplicate.status_code == 409
    assert duplicate.headers["retry-after"] == "1"
    assert len(service.created) == 1


async def test_same_key_with_another_body_is_422(
    client: httpx.AsyncClient, service: CountingTasksService, key: str
) -> None:
    await client.post(TASKS, json={"title": "one"}, headers=with_key(key))
    response = await client.post(TASKS, json={"title": "two"}, headers=with_key(key))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert len(service.created) == 1


async def test_same_key_on_another_route_is_422(
    client: httpx.AsyncClient, service: CountingTasksService, key: str
) -> None:
    await client.post(TASKS, json={"title": "one"}, headers=with_key(key))
    response = await client.post(f"{TASKS}?x=1", json={"title": "one"}, headers=with_key(key))

    assert response.status_code == 422


async def test_same_key_from_another_user_is_another_key(
    client: httpx.AsyncClient,
    service: CountingTasksService,
    open_gate: OpenGate,
    key: str,
    redis: Redis,
) -> None:
    await client.post(TASKS, json={"title": "mine"}, headers=with_key(key))
    other = Caller("someone-else", "user", "j2", "s2", NOW.timestamp(), NOW.timestamp() + 900, "t")
    open_gate.caller = other

    response = await client.post(TASKS, json={"title": "mine"}, headers=with_key(key))

    await redis.delete(Slot.of("user:someone-else", key).name)
    assert response.status_code == 201
    assert "idempotent-replayed" not in response.headers
    assert len(service.created) == 2


async def test_a_4xx_answer_is_replayed_too(
    client: httpx.AsyncClient, service: CountingTasksService, key: str
) -> None:
    first = await client.post(TASKS, json={"title": ""}, headers=with_key(key))
    second = await client.post(TASKS, json={"title": ""}, headers=with_key(key))

    assert (first.status_code, second.status_code) == (422, 422)
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"


async def test_a_5xx_answer_is_not_recorded_so_a_retry_runs(
    client: httpx.AsyncClient, service: CountingTasksService, key: str
) -> None:
    service.fail_next = grpc.StatusCode.UNAVAILABLE

    failed = await client.post(TASKS, json={"title": "retry"}, headers=with_key(key))
    retried = await client.post(TASKS, json={"title": "retry"}, headers=with_key(key))

    assert (failed.status_code, retried.status_code) == (503, 201)
    assert "idempotent-replayed" not in retried.headers
    assert len(service.created) == 1


async def test_the_record_in_redis_is_sealed(
    client: httpx.AsyncClient, redis: Redis, user_id: str, key: str
) -> None:
    await client.post(TASKS, json={"title": "secret title"}, headers=with_key(key))

    slot = Slot.of(f"user:{user_id}", key)
    stored = await redis.get(slot.name)
    assert stored is not None
    assert b"secret title" not in stored
    assert slot.open(stored).status == 201
    assert 86_000 < await redis.ttl(slot.name) <= 86_400


async def test_an_answer_given_before_the_body_was_read_is_not_recorded(
    client: httpx.AsyncClient, redis: Redis, user_id: str, key: str
) -> None:
    response = await client.post(
        f"{TASKS}/65f0c0ffee0000000000aaaa/attachments",
        files={"file": ("big.bin", io.BytesIO(b"x" * 3 * 1024 * 1024), "text/plain")},
        headers=with_key(key),
    )

    assert response.status_code == 413
    assert await redis.get(Slot.of(f"user:{user_id}", key).name) is None


async def test_redis_down_is_503_and_nothing_is_done(
    idempotency_app: FastAPI, client: httpx.AsyncClient, service: CountingTasksService
) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    idempotency_app.state.idempotency = IdempotencyStore(dead)

    response = await client.post(TASKS, json={"title": "x"}, headers=with_key("k"))

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert service.created == []
