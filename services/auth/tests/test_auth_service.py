"""The auth service over gRPC, against real SecantusDB, Redis and RabbitMQ."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

import aio_pika
import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import Message
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh.common.v1 import common_pb2
from taskmesh_auth.domain import Role
from taskmesh_auth.main import SERVICE
from taskmesh_auth.settings import AuthSettings
from taskmesh_auth.tokens import AccessTokens, KeyStore, public_jwk, public_key_pem
from taskmesh_chassis.context import REQUEST_ID_KEY
from taskmesh_chassis.errors import field_errors_from_metadata
from taskmesh_chassis.events import decode_event
from taskmesh_chassis.identity import not_before_key, revoked_session_key, revoked_token_key
from taskmesh_chassis.testing import (
    CapturedLogs,
    ExpectedIndex,
    GrpcServiceContract,
    assert_indexes_exist,
    find_free_port,
    running_service,
)

from .conftest import AMQP_URL

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "tr0ub4dor&3 but longer"

Metadata = Sequence[tuple[str, str]]


def bearer(access_token: str) -> Metadata:
    return [("authorization", f"Bearer {access_token}")]


def unique_email() -> str:
    return f"{uuid.uuid4().hex[:12]}@example.com"


def claims_of(access_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return claims


async def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    code: grpc.StatusCode = raised.value.code()
    return code


async def outbox_events(settings: AuthSettings, event_type: str) -> list[Message]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value()
    )
    try:
        records = client[settings.mongodb_database].outbox.find({"type": event_type})
        return [decode_event(bytes(record["body"])).payload async for record in records]
    finally:
        await client.close()


async def eventually_one_event(settings: AuthSettings, event_type: str) -> Message:
    deadline = time.monotonic() + 10
    while not (found := await outbox_events(settings, event_type)):
        assert time.monotonic() < deadline, f"no {event_type} in the outbox"
        await asyncio.sleep(0.05)
    [event] = found
    return event


class TestAuthService(GrpcServiceContract):
    service = SERVICE
    full_service_name = "taskmesh.auth.v1.AuthService"
    stub_class = auth_pb2_grpc.AuthServiceStub
    unimplemented_rpc: ClassVar[tuple[str, Message]] = ("GetMe", auth_pb2.GetMeRequest())

    # The contract's two UNIMPLEMENTED checks do not apply: every auth RPC is implemented.
    # test_every_rpc_is_implemented and the access-log test below take their place.
    test_rpc_not_implemented_yet_answers_unimplemented = None
    test_request_id_from_metadata_appears_in_the_access_log = None

    @pytest.fixture
    def settings(self, auth_settings: AuthSettings) -> AuthSettings:  # type: ignore[override]
        return auth_settings

    @pytest.fixture
    def stub(self, channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthServiceStub:
        return auth_pb2_grpc.AuthServiceStub(channel)

    async def register(
        self, stub: auth_pb2_grpc.AuthServiceStub, email: str | None = None
    ) -> auth_pb2.RegisterResponse:
        request = auth_pb2.RegisterRequest(
            email=email or unique_email(), password=PASSWORD, name="Ada"
        )
        reply: auth_pb2.RegisterResponse = await stub.Register(request, timeout=10)
        return reply

    async def login(
        self, stub: auth_pb2_grpc.AuthServiceStub, email: str, password: str = PASSWORD
    ) -> auth_pb2.Tokens:
        reply: auth_pb2.Tokens = await stub.Login(
            auth_pb2.LoginRequest(email=email, password=password), timeout=10
        )
        return reply

    # --- the service itself -------------------------------------------------------------

    async def test_unique_email_index_exists_after_start_up(
        self, settings: AuthSettings, channel: grpc.aio.Channel
    ) -> None:
        expected = ExpectedIndex([("email", 1)], unique=True)
        await assert_indexes_exist(settings, "users", [expected])

    async def test_token_collections_are_indexed_for_lookup_and_expiry(
        self, settings: AuthSettings, channel: grpc.aio.Channel
    ) -> None:
        await assert_indexes_exist(
            settings,
            "refresh_tokens",
            [ExpectedIndex([("session_id", 1)]), ExpectedIndex([("expires_at", 1)])],
        )
        await assert_indexes_exist(settings, "sessions", [ExpectedIndex([("user_id", 1)])])
        await assert_indexes_exist(settings, "reset_tokens", [ExpectedIndex([("expires_at", 1)])])

    async def test_every_rpc_is_implemented(self, stub: auth_pb2_grpc.AuthServiceStub) -> None:
        service = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
        codes = {}
        for method in service.methods:
            request = getattr(auth_pb2, method.input_type.name)()
            try:
                await getattr(stub, method.name)(request, timeout=10)
                codes[method.name] = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                codes[method.name] = error.code()

        assert grpc.StatusCode.UNIMPLEMENTED not in codes.values(), codes

    async def test_request_id_from_metadata_appears_in_the_rpcs_access_log(
        self, stub: auth_pb2_grpc.AuthServiceStub, logs: CapturedLogs
    ) -> None:
        call = stub.GetMe(
            auth_pb2.GetMeRequest(), metadata=[(REQUEST_ID_KEY, "auth-req-42")], timeout=5
        )
        assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED

        [line] = [line for line in logs.events("rpc.handled") if line["method"].endswith("GetMe")]
        assert (line["request_id"], line["code"]) == ("auth-req-42", "UNAUTHENTICATED")

    async def test_logs_never_carry_passwords_or_tokens(
        self, stub: auth_pb2_grpc.AuthServiceStub, logs: CapturedLogs
    ) -> None:
        registered = await self.register(stub)
        await stub.Refresh(
            auth_pb2.RefreshRequest(refresh_token=registered.tokens.refresh_token), timeout=5
        )

        text = "\n".join(str(line) for line in logs.lines())
        assert PASSWORD not in text
        assert registered.tokens.refresh_token not in text
        assert registered.tokens.access_token not in text

    # --- registration and login ---------------------------------------------------------

    async def test_register_then_get_me_with_the_access_token(
        self, stub: auth_pb2_grpc.AuthServiceStub
    ) -> None:
        email = unique_email()
        registered = await self.register(stub, email.upper())

        me = await stub.GetMe(
            auth_pb2.GetMeRequest(), metadata=bearer(registered.tokens.access_token), timeout=5
        )

        assert (me.id, me.email, me.role, me.active) == (
            registered.user.id,
            email,
            common_pb2.ROLE_USER,
            True,
        )
        assert registered.tokens.token_type == "bearer"
        assert registered.tokens.expires_in == 60

    async def test_concurrent_registrations_of_one_email_give_one_success(
        self, stub: auth_pb2_grpc.AuthServiceStub, settings: AuthSettings
    ) -> None:
        email = unique_email()
        variants = [email, email.upper(), f" {email}", email.capitalize()]

        outcomes = await asyncio.gather(
            *(self.register(stub, variant) for variant in variants), return_exceptions=True
        )

        succeeded = [o for o in outcomes if isinstance(o, auth_pb2.RegisterResponse)]
        refused = [o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert len(succeeded) == 1
        assert refused == [grpc.StatusCode.ALREADY_EXISTS] * 3
        assert len(await outbox_events(settings, "user.registered")) == 1

    async def test_invalid_registration_names_the_fields(
        self, stub: auth_pb2_grpc.AuthServiceStub
    ) -> None:
        request = auth_pb2.RegisterRequest(email="nope", password="short", name=" ")

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Register(request, timeout=5)

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        errors = field_errors_from_metadata(raised.value.trailing_metadata() or ())
        assert [error.loc for error in errors] == [
            ("body", "email"),
            ("body", "password"),
            ("body", "name"),
        ]

    async def test_wrong_password_and_unknown_email_answer_alike(
        self, stub: auth_pb2_grpc.AuthServiceStub
    ) -> None:
        email = unique_email()
        await self.register(stub, email)
        answers = []
        for login in (
            auth_pb2.LoginRequest(email=email, password="not the password"),
            auth_pb2.LoginRequest(email=unique_email(), password=PASSWORD),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Login(login, timeout=5)
            answers.append((raised.value.code(), raised.value.details()))

        assert answers == [(grpc.StatusCode.UNAUTHENTICATED, "wrong email or password")] * 2

    async def test_rpc_needing_a_caller_is_unauthenticated_without_a_token(
        self, stub: auth_pb2_grpc.AuthServiceStub
    ) -> None:
        call = stub.GetMe(auth_pb2.GetMeRequest(), metadata=[("x-user-id", "a" * 24)], timeout=5)

        assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED

    async def test_token_signed_with_another_key_is_unauthenticated(
        self, stub: auth_pb2_grpc.AuthServiceStub
    ) -> None:
        registered = await self.register(stub)
        forger = AccessTokens(
            KeyStore(Ed25519PrivateKey.generate()),
            issuer="taskmesh",
            audience="taskmesh-api",
            ttl_s=60,
        )
        forged = forger.issue(
            user_id=registered.user.id,
            role=Role.ADMIN,
            session_id="s",
            now=datetime.now(UTC),
        )

        call = stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(forged.token), timeout=5)

        assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED

    # --- sessions and revocation --------------------------------------------------------

    async def test_refresh_token_reuse_revokes_the_session_in_redis(
        self, stub: auth_pb2_grpc.AuthServiceStub, redis: Redis
    ) -> None:
        first = (await self.register(stub)).tokens
        second = await stub.Refresh(
            auth_pb2.RefreshRequest(refresh_token=first.refresh_token), timeout=5
        )
        session_id = claims_of(first.access_token)["sid"]

        reuse = stub.Refresh(auth_pb2.RefreshRequest(refresh_token=first.refresh_token), timeout=5)
        assert await code_of(reuse) == grpc.StatusCode.UNAUTHENTICATED

        assert await redis.get(revoked_session_key(session_id)) == "1"
        assert 110 <= await redis.ttl(revoked_session_key(session_id)) <= 120
        rotated = stub.Refresh(
            auth_pb2.RefreshRequest(refresh_token=second.refresh_token), timeout=5
        )
        assert await code_of(rotated) == grpc.StatusCode.UNAUTHENTICATED

    async def test_logout_revokes_the_token_until_its_exp_and_its_session(
        self, stub: auth_pb2_grpc.AuthServiceStub, redis: Redis
    ) -> None:
        tokens = (await self.register(stub)).tokens
        claims = claims_of(tokens.access_token)

        await stub.Logout(
            auth_pb2.LogoutRequest(refresh_token=tokens.refresh_token),
            metadata=bearer(tokens.access_token),
            timeout=5,
        )

        assert await redis.get(revoked_token_key(claims["jti"])) == "1"
        assert (
            0 < await redis.ttl(revoked_token_key(claims["jti"])) <= claims["exp"] - time.time() + 1
        )
        assert await redis.get(revoked_session_key(claims["sid"])) == "1"
        refresh = stub.Refresh(
            auth_pb2.RefreshRequest(refresh_token=tokens.refresh_token), timeout=5
        )
        assert await code_of(refresh) == grpc.StatusCode.UNAUTHENTICATED

    async def test_change_password_keeps_the_callers_session_and_ends_the_others(
        self, stub: auth_pb2_grpc.AuthServiceStub, redis: Redis
    ) -> None:
        email = unique_email()
        mine = (await self.register(stub, email)).tokens
        other = await self.login(stub, email)

        await stub.ChangePassword(
            auth_pb2.ChangePasswordRequest(current_password=PASSWORD, new_password=NEW_PASSWORD),
            metadata=bearer(mine.access_token),
            timeout=10,
        )

        await stub.GetMe(auth_pb2.GetMeRequest(), metadata=bearer(mine.access_token), timeout=5)
        await stub.Refresh(auth_pb2.RefreshRequest(refresh_token=mine.refresh_token), timeout=5)
        other_session = claims_of(other.access_token)["sid"]
        assert await redis.get(revoked_session_key(other_session)) == "1"
        assert await redis.get(revoked_session_key(claims_of(mine.access_token)["sid"])) is None
        refresh = stub.Refresh(
            auth_pb2.RefreshRequest(refresh_token=other.refresh_token), timeout=5
        )
        assert await code_of(refresh) == grpc.StatusCode.UNAUTHENTICATED
        await self.login(stub, email, NEW_PASSWORD)

    async def test_password_reset_with_the_emailed_token(
        self, stub: auth_pb2_grpc.AuthServiceStub, settings: AuthSettings, redis: Redis
    ) -> None:
        email = unique_email()
        registered = await self.register(stub, email)
        await stub.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=email), timeout=5)
        requested = await eventually_one_event(settings, "user.password_reset_requested")
        before = time.time()

        await stub.ResetPassword(
            auth_pb2.ResetPasswordRequest(token=requested.reset_token, new_password=NEW_PASSWORD),
            timeout=10,
        )

        not_before = float(await redis.get(not_before_key(registered.user.id)) or 0)
        assert before - 1 < not_before <= time.time()
        assert not_before > claims_of(registered.tokens.access_token)["iat"]
        await self.login(stub, email, NEW_PASSWORD)
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await stub.ResetPassword(
                auth_pb2.ResetPasswordRequest(token=requested.reset_token, new_password=PASSWORD),
                timeout=5,
            )
        assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        errors = field_errors_from_metadata(reused.value.trailing_metadata() or ())
        assert [error.loc for error in errors] == [("body", "token")]

    async def test_forgot_password_for_an_unknown_email_succeeds_and_issues_nothing(
        self, stub: auth_pb2_grpc.AuthServiceStub, settings: AuthSettings
    ) -> None:
        await stub.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=unique_email()), timeout=5)
        await asyncio.sleep(0.3)

        assert await outbox_events(settings, "user.password_reset_requested") == []

    async def test_revocation_store_down_makes_logout_unavailable(
        self, auth_settings: AuthSettings
    ) -> None:
        nothing_listens = f"redis://127.0.0.1:{find_free_port()}/0"
        settings = auth_settings.model_copy(
            update={"redis_url": SecretStr(nothing_listens), "redis_timeout_s": 0.5}
        )
        async with running_service(SERVICE, settings) as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            tokens = (await self.register(stub)).tokens

            logout = stub.Logout(
                auth_pb2.LogoutRequest(), metadata=bearer(tokens.access_token), timeout=5
            )

            assert await code_of(logout) == grpc.StatusCode.UNAVAILABLE

    # --- administration -----------------------------------------------------------------

    async def test_bootstrap_admin_is_ensured_at_every_start_once(
        self, auth_settings: AuthSettings
    ) -> None:
        settings = auth_settings.model_copy(
            update={
                "bootstrap_admin_email": "Root@Example.com",
                "bootstrap_admin_password": SecretStr(PASSWORD),
            }
        )
        for _ in range(2):
            async with running_service(SERVICE, settings) as channel:
                stub = auth_pb2_grpc.AuthServiceStub(channel)
                tokens = await self.login(stub, "root@example.com")
                me = await stub.GetMe(
                    auth_pb2.GetMeRequest(), metadata=bearer(tokens.access_token), timeout=5
                )
                assert me.role == common_pb2.ROLE_ADMIN

        assert len(await outbox_events(settings, "user.registered")) == 1

    async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
        self, auth_settings: AuthSettings
    ) -> None:
        settings = auth_settings.model_copy(
            update={
                "bootstrap_admin_email": "root@example.com",
                "bootstrap_admin_password": SecretStr(PASSWORD),
            }
        )
        async with running_service(SERVICE, settings) as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            root = await self.login(stub, "root@example.com")
            second = await self.register(stub)
            await stub.UpdateUser(
                auth_pb2.UpdateUserRequest(user_id=second.user.id, role=common_pb2.ROLE_ADMIN),
                metadata=bearer(root.access_token),
                timeout=5,
            )
            other = await self.login(stub, second.user.email)
            root_id = claims_of(root.access_token)["sub"]

            outcomes = await asyncio.gather(
                stub.UpdateUser(
                    auth_pb2.UpdateUserRequest(user_id=second.user.id, role=common_pb2.ROLE_USER),
                    metadata=bearer(root.access_token),
                    timeout=10,
                ),
                stub.UpdateUser(
                    auth_pb2.UpdateUserRequest(user_id=root_id, role=common_pb2.ROLE_USER),
                    metadata=bearer(other.access_token),
                    timeout=10,
                ),
                return_exceptions=True,
            )

            assert len([o for o in outcomes if isinstance(o, auth_pb2.User)]) == 1
            [refused] = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
            assert refused.code() in (
                grpc.StatusCode.ABORTED,
                grpc.StatusCode.PERMISSION_DENIED,
            )

    async def test_deactivation_revokes_access_and_refuses_login(
        self, auth_settings: AuthSettings, redis: Redis
    ) -> None:
        settings = auth_settings.model_copy(
            update={
                "bootstrap_admin_email": "root@example.com",
                "bootstrap_admin_password": SecretStr(PASSWORD),
            }
        )
        async with running_service(SERVICE, settings) as channel:
            stub = auth_pb2_grpc.AuthServiceStub(channel)
            root = await self.login(stub, "root@example.com")
            user = await self.register(stub)

            updated = await stub.UpdateUser(
                auth_pb2.UpdateUserRequest(user_id=user.user.id, active=False),
                metadata=bearer(root.access_token),
                timeout=5,
            )

            assert not updated.active
            not_before = float(await redis.get(not_before_key(user.user.id)) or 0)
            assert not_before > claims_of(user.tokens.access_token)["iat"]
            login = stub.Login(
                auth_pb2.LoginRequest(email=user.user.email, password=PASSWORD), timeout=5
            )
            assert await code_of(login) == grpc.StatusCode.PERMISSION_DENIED
            demote_self = stub.UpdateUser(
                auth_pb2.UpdateUserRequest(
                    user_id=claims_of(root.access_token)["sub"], active=False
                ),
                metadata=bearer(root.access_token),
                timeout=5,
            )
            assert await code_of(demote_self) == grpc.StatusCode.ABORTED

    async def test_deleted_user_can_no_longer_log_in(
        self, stub: auth_pb2_grpc.AuthServiceStub, settings: AuthSettings
    ) -> None:
        registered = await self.register(stub)

        await stub.DeleteUser(
            auth_pb2.DeleteUserRequest(user_id=registered.user.id),
            metadata=bearer(registered.tokens.access_token),
            timeout=5,
        )

        login = stub.Login(
            auth_pb2.LoginRequest(email=registered.user.email, password=PASSWORD), timeout=5
        )
        assert await code_of(login) == grpc.StatusCode.UNAUTHENTICATED
        [deleted] = await outbox_events(settings, "user.deleted")
        assert deleted.user_id == registered.user.id

    # --- keys and events ----------------------------------------------------------------

    async def test_jwks_publishes_the_signing_key_then_the_previous_ones(
        self, auth_settings: AuthSettings, signing_key: Ed25519PrivateKey
    ) -> None:
        retired = Ed25519PrivateKey.generate()
        settings = auth_settings.model_copy(
            update={"jwt_previous_public_keys": public_key_pem(retired.public_key()).decode()}
        )
        async with running_service(SERVICE, settings) as channel:
            jwks = await auth_pb2_grpc.AuthServiceStub(channel).GetJwks(
                auth_pb2.GetJwksRequest(), timeout=5
            )

        assert [(k.kid, k.x) for k in jwks.keys] == [
            (public_jwk(signing_key.public_key()).kid, public_jwk(signing_key.public_key()).x),
            (public_jwk(retired.public_key()).kid, public_jwk(retired.public_key()).x),
        ]
        assert {(k.kty, k.crv, k.alg, k.use) for k in jwks.keys} == {
            ("OKP", "Ed25519", "EdDSA", "sig")
        }

    async def test_registration_is_published_on_the_events_exchange(
        self, stub: auth_pb2_grpc.AuthServiceStub, exchange: str
    ) -> None:
        async with bound_queue(exchange, "user.registered") as queue:
            registered = await self.register(stub)

            message = await _next_message(queue)

        event = decode_event(message.body)
        assert (event.type, event.subject) == ("user.registered", registered.user.id)
        assert event.payload.email == registered.user.email

    async def test_any_caller_learns_only_whether_an_account_exists_and_is_active(
        self, stub: auth_pb2_grpc.AuthServiceStub
    ) -> None:
        target = await self.register(stub)
        asker = await self.register(stub)
        metadata = bearer(asker.tokens.access_token)

        known = await stub.GetUserStatus(
            auth_pb2.GetUserStatusRequest(user_id=target.user.id), metadata=metadata, timeout=5
        )
        unknown = await stub.GetUserStatus(
            auth_pb2.GetUserStatusRequest(user_id="65f0c0ffee0000000000aaaa"),
            metadata=metadata,
            timeout=5,
        )
        anonymous = stub.GetUserStatus(
            auth_pb2.GetUserStatusRequest(user_id=target.user.id), timeout=5
        )

        assert (known.user_id, known.exists, known.active) == (target.user.id, True, True)
        assert (unknown.exists, unknown.active) == (False, False)
        assert await code_of(anonymous) == grpc.StatusCode.UNAUTHENTICATED


@asynccontextmanager
async def bound_queue(
    exchange_name: str, routing_key: str
) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """An exclusive queue bound to the exchange by `routing_key`, for the block's duration."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key)
        yield queue


async def _next_message(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    deadline = time.monotonic() + 15
    while True:
        message = await queue.get(fail=False)
        if message is not None:
            await message.ack()
            return message
        assert time.monotonic() < deadline, "no event was published"
        await asyncio.sleep(0.1)
