"""Fixtures of the tasks service's integration tests: SecantusDB, a stand-in auth, real tokens.

The stand-in auth answers GetUserStatus from a dict (it owns `active`, as the real one does).
Callers' tokens are real EdDSA JWTs signed by a key the service is composed to trust. The
event relay points at a port nothing listens on, so events stay in the outbox for the tests
to read and no test event reaches a broker other suites use.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh_chassis.testing import find_free_port

SIGNING_KEY = Ed25519PrivateKey.generate()
KID = "tasks-test-key"


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


@dataclass
class FakeAuth(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    """AuthService.GetUserStatus over a dict of user id -> active."""

    users: dict[str, bool] = field(default_factory=dict)
    authorizations: list[str] = field(default_factory=list)

    async def GetUserStatus(
        self, request: auth_pb2.GetUserStatusRequest, context: Any
    ) -> auth_pb2.UserStatus:
        metadata = dict(context.invocation_metadata() or ())
        self.authorizations.append(str(metadata.get("authorization", "")))
        active = self.users.get(request.user_id)
        return auth_pb2.UserStatus(
            user_id=request.user_id, exists=active is not None, active=bool(active)
        )


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
