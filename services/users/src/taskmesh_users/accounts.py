"""The caller's account, asked of the auth service, which owns email, role and active flag."""

from __future__ import annotations

from datetime import UTC
from typing import Any, Final, Protocol

import grpc
import structlog
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh.common.v1 import common_pb2
from taskmesh_chassis.errors import Unauthenticated
from taskmesh_chassis.grpc_client import create_channel

from taskmesh_users.domain import Account, AuthTimedOut, AuthUnavailable, Role

log = structlog.get_logger(__name__)

AUTH_SERVICE_NAME: Final = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name

_ROLES: Final = {common_pb2.ROLE_USER: Role.USER, common_pb2.ROLE_ADMIN: Role.ADMIN}


class AccountDirectory(Protocol):
    """Where accounts are read."""

    async def account(self, user_id: str) -> Account | None:
        """The account, None if auth knows none; AuthUnavailable/AuthTimedOut otherwise."""
        ...


class UserSource(Protocol):
    """The part of the AuthService stub the directory uses."""

    def GetUser(self, request: auth_pb2.GetUserRequest, *, timeout: float | None = None) -> Any:
        """Call AuthService.GetUser."""
        ...


def create_auth_channel(target: str, timeout_s: float) -> grpc.aio.Channel:
    """A channel to auth: the caller's token is forwarded, GetUser retried on UNAVAILABLE."""
    return create_channel(
        target,
        service_full_name=AUTH_SERVICE_NAME,
        idempotent_methods=["GetUser"],
        default_timeout_s=timeout_s,
    )


def account_from(user: auth_pb2.User) -> Account:
    """The account an auth User message describes; AuthUnavailable if it names no known role."""
    role = _ROLES.get(user.role)
    if role is None:
        log.error("users.auth_answer_invalid", user_id=user.id, role=user.role)
        raise AuthUnavailable()
    return Account(
        id=user.id,
        email=user.email,
        role=role,
        active=user.active,
        created_at=user.created_at.ToDatetime(tzinfo=UTC),
    )


class AuthAccountDirectory:
    """Accounts from AuthService.GetUser as the caller (auth lets anyone read their own).

    Each call has the deadline `timeout_s`. Never answers without auth: auth down is
    AuthUnavailable (UNAVAILABLE), auth too slow AuthTimedOut (DEADLINE_EXCEEDED).
    """

    def __init__(self, source: UserSource, *, timeout_s: float) -> None:
        self._source = source
        self._timeout_s = timeout_s

    @classmethod
    def over(cls, channel: grpc.aio.Channel, *, timeout_s: float) -> AuthAccountDirectory:
        """A directory asking auth over `channel`."""
        return cls(auth_pb2_grpc.AuthServiceStub(channel), timeout_s=timeout_s)

    async def account(self, user_id: str) -> Account | None:
        """Ask auth for the account."""
        request = auth_pb2.GetUserRequest(user_id=user_id)
        try:
            user = await self._source.GetUser(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            log.warning("users.account_read_failed", grpc_code=code.name)
            if code == grpc.StatusCode.NOT_FOUND:
                return None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                raise Unauthenticated() from None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise AuthTimedOut() from None
            raise AuthUnavailable() from None
        return account_from(user)
