"""Fixtures of the users service's tests: SecantusDB, a stand-in auth, real tokens, RabbitMQ.

The stand-in auth answers GetUser from a dict of accounts (it owns email, role and active
flag, as the real one does) and can be made slow. Callers' tokens are real EdDSA JWTs signed
by a key the service is composed to trust. Unless a test asks for the broker, the relay and
the consumer point at a port nothing listens on, so events stay in the outbox for the tests
to read and no test event reaches a broker other suites use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import jwt
import pytest
from bson import ObjectId
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.timestamp_pb2 import Timestamp
from pymongo import AsyncMongoClient
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh.common.v1 import common_pb2
from taskmesh_chassis.identity import StaticJwksProvider
from taskmesh_chassis.mongo import create_mongo_client, ensure_indexes
from taskmesh_chassis.testing import find_free_port
from taskmesh_users.domain import Account, Role, new_profile
from taskmesh_users.main import users_service
from taskmesh_users.repository import INDEXES, ensure_collections, profile_document

SIGNING_KEY = Ed25519PrivateKey.generate()
KID = "users-test-key"
SERVICE = users_service(StaticJwksProvider({KID: SIGNING_KEY.public_key()}))

Metadata = list[tuple[str, str]]


def mint_token(user_id: str, role: str = "user") -> str:
    """An access token for `user_id`, as auth signs them."""
    now = time.time()
    claims = {
        "iss": "taskmesh",
        "aud": "taskmesh-api",
        "sub": user_id,
        "role": role,
        "iat": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "sid": uuid.uuid4().hex,
    }
    return jwt.encode(claims, SIGNING_KEY, algorithm="EdDSA", headers={"kid": KID, "typ": "at+jwt"})


def as_user(user_id: str, role: str = "user") -> Metadata:
    """gRPC metadata presenting a signed-in user."""
    return [("authorization", f"Bearer {mint_token(user_id, role)}")]


def new_user_id() -> str:
    return str(ObjectId())


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def seed_profile(
    database: Any,
    email: str,
    *,
    name: str = "Seeded",
    role: Role = Role.USER,
    active: bool = True,
    created_at: datetime | None = None,
) -> str:
    """A profile stored directly, as the user.registered consumer would store it; its id."""
    account = Account(new_user_id(), email, role, active, created_at or datetime.now(UTC))
    await database.profiles.insert_one(profile_document(new_profile(account, name)))
    return account.id


@dataclass
class FakeAuth(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    """AuthService.GetUser over a dict of accounts; `delay_s` makes every answer late."""

    accounts: dict[str, auth_pb2.User] = field(default_factory=dict)
    authorizations: list[str] = field(default_factory=list)
    delay_s: float = 0.0

    def add(
        self,
        user_id: str,
        email: str,
        *,
        role: int = common_pb2.ROLE_USER,
        active: bool = True,
        created_at: datetime | None = None,
    ) -> auth_pb2.User:
        account = auth_pb2.User(
            id=user_id,
            email=email,
            role=role,
            active=active,
            created_at=timestamp(created_at or datetime.now(UTC)),
        )
        self.accounts[user_id] = account
        return account

    async def GetUser(self, request: auth_pb2.GetUserRequest, context: Any) -> auth_pb2.User:
        metadata = dict(context.invocation_metadata() or ())
        self.authorizations.append(str(metadata.get("authorization", "")))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        account = self.accounts.get(request.user_id)
        if account is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "user not found")
        return account


@dataclass
class RunningAuth:
    fake: FakeAuth
    target: str
    server: grpc.aio.Server


@pytest.fixture
async def fake_auth() -> AsyncIterator[RunningAuth]:
    fake = FakeAuth()
    server = grpc.aio.server()
    auth_pb2_grpc.add_AuthServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield RunningAuth(fake, f"127.0.0.1:{port}", server)
    await server.stop(0)


@pytest.fixture
def dead_amqp_url() -> str:
    return f"amqp://guest:guest@127.0.0.1:{find_free_port()}/"


@pytest.fixture
async def users_db(secantus_url: str) -> AsyncIterator[Any]:
    """A fresh database laid out as the service lays out its own (indexes, collections)."""
    client: AsyncMongoClient[dict[str, Any]] = create_mongo_client(
        secantus_url, appname="taskmesh-users-tests"
    )
    database = client[f"test_users_{uuid.uuid4().hex[:12]}"]
    await ensure_indexes(database, INDEXES)
    await ensure_collections(database)
    yield database
    await client.close()
