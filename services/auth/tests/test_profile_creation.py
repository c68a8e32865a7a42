"""Register asks the users service for the new account's profile, and never depends on it.

The use case over fakes, the gRPC adapter over a recording stub, and the whole path over
real gRPC: the auth service against a stand-in users server that records what it receives.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh.common.v1 import common_pb2
from taskmesh.users.v1 import users_pb2, users_pb2_grpc
from taskmesh_auth.domain import EmailTaken, Role
from taskmesh_auth.events import USER_REGISTERED
from taskmesh_auth.main import SERVICE
from taskmesh_auth.profiles import NewProfile, ProfileNotCreated, UsersProfileCreator
from taskmesh_auth.settings import AuthSettings
from taskmesh_chassis.testing import capture_logs, running_service

from .fakes import Harness, make_harness

PASSWORD = "correct horse battery staple"


@pytest.fixture
def auth() -> Harness:
    return make_harness()


# --- the use case ---------------------------------------------------------------------------


async def test_register_asks_for_the_profile_as_the_new_account_with_the_trimmed_name(
    auth: Harness,
) -> None:
    user, tokens = await auth.service.register("ada@example.com", PASSWORD, "  Ada Lovelace ")

    assert auth.profiles.created == [
        NewProfile(
            user_id=user.id, role=Role.USER, name="Ada Lovelace", access_token=tokens.access_token
        )
    ]
    assert auth.tokens.verify(tokens.access_token).user_id == user.id


@pytest.mark.parametrize("grpc_code", ["UNAVAILABLE", "DEADLINE_EXCEEDED", "UNAUTHENTICATED"])
async def test_register_succeeds_and_logs_when_the_profile_is_not_created(
    auth: Harness, grpc_code: str
) -> None:
    logs = capture_logs("auth")
    auth.profiles.failure = grpc_code

    user, tokens = await auth.service.register("ada@example.com", PASSWORD, "Ada")

    assert auth.store.data.users[user.id].email == "ada@example.com"
    [event] = auth.store.events_of(USER_REGISTERED)
    assert (event.payload.user_id, event.payload.name) == (user.id, "Ada")
    [line] = logs.events("auth.profile_create_failed")
    assert (line["user_id"], line["grpc_code"], line["level"]) == (user.id, grpc_code, "warning")
    assert tokens.access_token not in str(logs.lines())


async def test_a_refused_registration_asks_for_no_profile(auth: Harness) -> None:
    await auth.service.register("ada@example.com", PASSWORD, "Ada")

    with pytest.raises(EmailTaken):
        await auth.service.register("ADA@example.com", PASSWORD, "Ada again")

    assert [profile.name for profile in auth.profiles.created] == ["Ada"]


def test_a_new_profile_never_shows_its_token() -> None:
    profile = NewProfile(user_id="u1", role=Role.USER, name="Ada", access_token="secret.jwt.value")

    assert "secret.jwt.value" not in repr(profile)


# --- the gRPC adapter -----------------------------------------------------------------------


@dataclass
class RecordingUsersStub:
    """Stands in for the UsersService stub: records each CreateProfile call, or fails it."""

    calls: list[tuple[users_pb2.CreateProfileRequest, float | None, Any]] = field(
        default_factory=list
    )
    error: grpc.aio.AioRpcError | None = None

    def CreateProfile(
        self,
        request: users_pb2.CreateProfileRequest,
        *,
        timeout: float | None = None,
        metadata: Any = None,
    ) -> Awaitable[users_pb2.Profile]:
        # Like the generated stub: the call is made at once, its answer awaited later.
        self.calls.append((request, timeout, metadata))
        return self._answer(request)

    async def _answer(self, request: users_pb2.CreateProfileRequest) -> users_pb2.Profile:
        if self.error is not None:
            raise self.error
        return users_pb2.Profile(name=request.name)


async def test_the_users_call_presents_the_new_account_within_the_deadline() -> None:
    stub = RecordingUsersStub()
    creator = UsersProfileCreator(stub, timeout_s=0.75)

    await creator.create_profile(
        NewProfile(user_id="u1", role=Role.USER, name="Ada", access_token="a.b.c")
    )

    [(request, timeout, metadata)] = stub.calls
    assert request == users_pb2.CreateProfileRequest(name="Ada")
    assert timeout == 0.75
    assert dict(metadata) == {
        "authorization": "Bearer a.b.c",
        "x-user-id": "u1",
        "x-user-role": "user",
    }


async def test_a_failed_users_call_is_profile_not_created_naming_its_code() -> None:
    stub = RecordingUsersStub(
        error=grpc.aio.AioRpcError(
            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata()
        )
    )
    creator = UsersProfileCreator(stub, timeout_s=0.75)

    with pytest.raises(ProfileNotCreated) as raised:
        await creator.create_profile(
            NewProfile(user_id="u1", role=Role.USER, name="Ada", access_token="a.b.c")
        )

    assert raised.value.grpc_code == "DEADLINE_EXCEEDED"


# --- over real gRPC -------------------------------------------------------------------------


@dataclass
class ReceivedCall:
    name: str
    metadata: Sequence[tuple[str, str | bytes]]

    def values(self, key: str) -> list[str | bytes]:
        return [value for name, value in self.metadata if name == key]


class RecordingUsersServicer(users_pb2_grpc.UsersServiceServicer):  # type: ignore[misc]
    """Serves CreateProfile only: records the name and metadata; waits `delay_s` first."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.received: list[ReceivedCall] = []

    async def CreateProfile(
        self, request: users_pb2.CreateProfileRequest, context: grpc.aio.ServicerContext
    ) -> users_pb2.Profile:
        """Record the call and answer a profile."""
        await asyncio.sleep(self.delay_s)
        self.received.append(ReceivedCall(request.name, tuple(context.invocation_metadata())))
        return users_pb2.Profile(name=request.name)


@dataclass
class UsersStandIn:
    target: str
    servicer: RecordingUsersServicer


@pytest.fixture
async def users_stand_in() -> AsyncIterator[UsersStandIn]:
    servicer = RecordingUsersServicer()
    server = grpc.aio.server()
    users_pb2_grpc.add_UsersServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield UsersStandIn(f"127.0.0.1:{port}", servicer)
    await server.stop(None)


def register_request(email: str, name: str = "  Ada Lovelace ") -> auth_pb2.RegisterRequest:
    return auth_pb2.RegisterRequest(email=email, password=PASSWORD, name=name)


@pytest.mark.integration
async def test_register_creates_the_profile_with_the_new_accounts_token(
    auth_settings: AuthSettings, users_stand_in: UsersStandIn
) -> None:
    settings = auth_settings.model_copy(update={"users_grpc_target": users_stand_in.target})
    async with running_service(SERVICE, settings) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)

        registered = await stub.Register(register_request("ada@example.com"), timeout=10)

    [call] = users_stand_in.servicer.received
    assert call.name == "Ada Lovelace"
    assert call.values("authorization") == [f"Bearer {registered.tokens.access_token}"]
    assert call.values("x-user-id") == [registered.user.id]
    assert call.values("x-user-role") == ["user"]


@pytest.mark.integration
async def test_register_by_a_signed_in_caller_asks_as_the_new_account_only(
    auth_settings: AuthSettings, users_stand_in: UsersStandIn
) -> None:
    settings = auth_settings.model_copy(update={"users_grpc_target": users_stand_in.target})
    async with running_service(SERVICE, settings) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        first = await stub.Register(register_request("ada@example.com"), timeout=10)

        second = await stub.Register(
            register_request("grace@example.com", "Grace"),
            metadata=[("authorization", f"Bearer {first.tokens.access_token}")],
            timeout=10,
        )

    call = users_stand_in.servicer.received[-1]
    assert call.name == "Grace"
    assert call.values("authorization") == [f"Bearer {second.tokens.access_token}"]
    assert call.values("x-user-id") == [second.user.id]
    assert second.user.role == common_pb2.ROLE_USER


@pytest.mark.integration
async def test_register_answers_within_the_deadline_when_users_is_too_slow(
    auth_settings: AuthSettings, users_stand_in: UsersStandIn
) -> None:
    users_stand_in.servicer.delay_s = 5.0
    settings = auth_settings.model_copy(
        update={"users_grpc_target": users_stand_in.target, "profile_create_timeout_s": 0.3}
    )
    logs = capture_logs("auth")
    async with running_service(SERVICE, settings) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        started = time.monotonic()

        registered = await stub.Register(register_request("ada@example.com"), timeout=10)

        elapsed = time.monotonic() - started

    assert registered.user.id
    assert elapsed < 4.0
    [line] = logs.events("auth.profile_create_failed")
    assert (line["user_id"], line["grpc_code"]) == (registered.user.id, "DEADLINE_EXCEEDED")


@pytest.mark.integration
async def test_register_succeeds_when_users_is_down(auth_settings: AuthSettings) -> None:
    # auth_settings points USERS_GRPC_TARGET at a port nothing listens on.
    logs = capture_logs("auth")
    async with running_service(SERVICE, auth_settings) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)

        registered = await stub.Register(register_request("ada@example.com"), timeout=10)

    [line] = logs.events("auth.profile_create_failed")
    assert (line["user_id"], line["grpc_code"]) == (registered.user.id, "UNAVAILABLE")
    assert registered.tokens.access_token not in str(logs.lines())
