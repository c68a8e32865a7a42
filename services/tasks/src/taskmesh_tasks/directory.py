"""Who may be assigned a task: asked of the auth service, which owns whether a user is active."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, Protocol

import grpc
import structlog
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh_chassis.grpc_client import create_channel

from taskmesh_tasks.domain import AssigneeCheckTimedOut, AssigneeCheckUnavailable

log = structlog.get_logger(__name__)

AUTH_SERVICE_NAME: Final = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


class UserState(StrEnum):
    """What the tasks service needs to know of a user."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    UNKNOWN = "unknown"


class UserDirectory(Protocol):
    """Where the state of a user is looked up."""

    async def state_of(self, user_id: str) -> UserState:
        """The user's state; AssigneeCheckUnavailable/TimedOut when it cannot be learnt."""
        ...


class UserStatusSource(Protocol):
    """The part of the AuthService stub the directory uses."""

    def GetUserStatus(
        self, request: auth_pb2.GetUserStatusRequest, *, timeout: float | None = None
    ) -> Any:
        """Call AuthService.GetUserStatus."""
        ...


def create_auth_channel(target: str, timeout_s: float) -> grpc.aio.Channel:
    """A channel to auth: the caller's token is forwarded, GetUserStatus retried on UNAVAILABLE."""
    return create_channel(
        target,
        service_full_name=AUTH_SERVICE_NAME,
        idempotent_methods=["GetUserStatus"],
        default_timeout_s=timeout_s,
    )


class AuthUserDirectory:
    """Users' states from AuthService.GetUserStatus, each call within `timeout_s`.

    Never accepts silently: auth down is UNAVAILABLE, auth too slow DEADLINE_EXCEEDED.
    """

    def __init__(self, source: UserStatusSource, *, timeout_s: float) -> None:
        self._source = source
        self._timeout_s = timeout_s

    @classmethod
    def over(cls, channel: grpc.aio.Channel, *, timeout_s: float) -> AuthUserDirectory:
        """A directory asking auth over `channel`."""
        return cls(auth_pb2_grpc.AuthServiceStub(channel), timeout_s=timeout_s)

    async def state_of(self, user_id: str) -> UserState:
        """Ask auth whether the user exists and is active."""
        request = auth_pb2.GetUserStatusRequest(user_id=user_id)
        try:
            status = await self._source.GetUserStatus(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as error:
            log.warning("tasks.assignee_check_failed", grpc_code=error.code().name)
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise AssigneeCheckTimedOut() from None
            raise AssigneeCheckUnavailable() from None
        if not status.exists:
            return UserState.UNKNOWN
        return UserState.ACTIVE if status.active else UserState.INACTIVE
