"""The new account's profile, asked of the users service as register finishes.

API.md promises `GET /users/me` answers with the registered name as soon as register has
answered, so register asks the users service for the profile before answering. It does not
depend on it: a failed or slow call (`PROFILE_CREATE_TIMEOUT_S`) is only logged, and the users
service's consumer of `user.registered` — committed with the account — creates the same
profile a moment later. `CreateProfile` is idempotent, so both paths may run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import grpc
from taskmesh.users.v1 import users_pb2, users_pb2_grpc
from taskmesh_chassis.context import USER_ID_KEY, USER_ROLE_KEY
from taskmesh_chassis.grpc_client import create_channel
from taskmesh_chassis.identity import AUTHORIZATION_KEY

from taskmesh_auth.domain import Role

USERS_SERVICE_NAME: Final = users_pb2.DESCRIPTOR.services_by_name["UsersService"].full_name


@dataclass(frozen=True, slots=True)
class NewProfile:
    """The profile a just-registered account needs, and the token it is asked for with."""

    user_id: str
    role: Role
    name: str
    access_token: str = field(repr=False)
    """The new account's own access token: the users service acts for its caller."""


class ProfileNotCreated(Exception):
    """The users service did not confirm the profile; `grpc_code` names why (never the token)."""

    def __init__(self, grpc_code: str) -> None:
        super().__init__(f"the users service answered {grpc_code}")
        self.grpc_code = grpc_code


class ProfileCreator(Protocol):
    """Where a new account's profile is created."""

    async def create_profile(self, profile: NewProfile) -> None:
        """Create the profile unless it exists; ProfileNotCreated when that is not confirmed."""
        ...


class CreateProfileSource(Protocol):
    """The part of the UsersService stub the creator uses."""

    def CreateProfile(
        self,
        request: users_pb2.CreateProfileRequest,
        *,
        timeout: float | None = None,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> Any:
        """Call UsersService.CreateProfile."""
        ...


def create_users_channel(target: str, timeout_s: float) -> grpc.aio.Channel:
    """A channel to the users service, connecting lazily, with no retries.

    CreateProfile is idempotent, but the `user.registered` event already is its retry:
    retrying here would only make register wait longer while the users service is down.
    """
    return create_channel(
        target,
        service_full_name=USERS_SERVICE_NAME,
        idempotent_methods=[],
        default_timeout_s=timeout_s,
    )


class UsersProfileCreator:
    """Creates profiles with UsersService.CreateProfile, each call within `timeout_s`."""

    def __init__(self, source: CreateProfileSource, *, timeout_s: float) -> None:
        self._source = source
        self._timeout_s = timeout_s

    @classmethod
    def over(cls, channel: grpc.aio.Channel, *, timeout_s: float) -> UsersProfileCreator:
        """A creator calling the users service over `channel`."""
        return cls(users_pb2_grpc.UsersServiceStub(channel), timeout_s=timeout_s)

    async def create_profile(self, profile: NewProfile) -> None:
        """Ask for the profile as the new account itself.

        The identity is set in full here: the channel forwards the current caller's only for
        keys a call leaves unset, and register's caller (anonymous, or some other signed-in
        user) is not the account being created.
        """
        identity = (
            (AUTHORIZATION_KEY, f"Bearer {profile.access_token}"),
            (USER_ID_KEY, profile.user_id),
            (USER_ROLE_KEY, profile.role.value),
        )
        request = users_pb2.CreateProfileRequest(name=profile.name)
        try:
            await self._source.CreateProfile(request, timeout=self._timeout_s, metadata=identity)
        except grpc.aio.AioRpcError as error:
            raise ProfileNotCreated(error.code().name) from None
