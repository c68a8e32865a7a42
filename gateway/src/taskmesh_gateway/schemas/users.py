"""Bodies and answers of `/api/v1/users`."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Annotated

from pydantic import AfterValidator, BaseModel, StrictBool, StringConstraints, WithJsonSchema
from taskmesh.auth.v1 import auth_pb2
from taskmesh.users.v1 import users_pb2

from taskmesh_gateway.schemas.auth import Name, Role, role_from_proto, role_to_proto
from taskmesh_gateway.schemas.common import (
    Page,
    PartialUpdate,
    UtcDatetime,
    datetime_from_proto,
    next_cursor_from_proto,
)


@cache
def _known_time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_time_zone(value: str) -> str:
    if value not in _known_time_zones():
        raise ValueError("not an IANA time zone name")
    return value


TimeZone = Annotated[
    str,
    AfterValidator(_check_time_zone),
    WithJsonSchema({"type": "string", "description": "IANA time zone name", "example": "UTC"}),
]

Bio = Annotated[str, StringConstraints(max_length=500)]


class Profile(BaseModel):
    """A user's profile."""

    id: str
    email: str
    name: str
    bio: str
    timezone: str
    email_notifications: bool
    role: Role
    active: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ProfilePage(Page[Profile]):
    """A page of profiles."""


class UserSummary(BaseModel):
    """The public face of a user, for choosing an assignee."""

    id: str
    name: str


class ProfileUpdate(PartialUpdate):
    """Changes to the caller's profile; omitted fields stay unchanged."""

    name: Name | None = None
    bio: Bio | None = None
    timezone: TimeZone | None = None
    email_notifications: StrictBool | None = None

    def to_proto(self) -> users_pb2.UpdateProfileRequest:
        """The UpdateProfile RPC message, with only the given fields set."""
        return users_pb2.UpdateProfileRequest(**self.model_dump(exclude_unset=True))


class UserUpdate(PartialUpdate):
    """An admin's change to a user's role or active flag; omitted fields stay unchanged."""

    role: Role | None = None
    active: StrictBool | None = None

    def to_proto(self, user_id: str) -> auth_pb2.UpdateUserRequest:
        """The auth service's UpdateUser message (auth owns role and active), given fields only."""
        request = auth_pb2.UpdateUserRequest(user_id=user_id)
        if self.role is not None:
            request.role = role_to_proto(self.role)
        if self.active is not None:
            request.active = self.active
        return request


def profile_from_proto(profile: users_pb2.Profile) -> Profile:
    """Convert a proto Profile."""
    return Profile(
        id=profile.id,
        email=profile.email,
        name=profile.name,
        bio=profile.bio,
        timezone=profile.timezone,
        email_notifications=profile.email_notifications,
        role=role_from_proto(profile.role),
        active=profile.active,
        created_at=datetime_from_proto(profile.created_at),
        updated_at=datetime_from_proto(profile.updated_at),
    )


def with_standing_of(profile: Profile, user: auth_pb2.User) -> Profile:
    """The profile with role and active flag as auth, their authority, answered them.

    The users service's copies follow by event a moment later; an answer must not wait for them.
    """
    return profile.model_copy(update={"role": role_from_proto(user.role), "active": user.active})


def profile_page_from_proto(response: users_pb2.ListUsersResponse) -> ProfilePage:
    """Convert a ListUsers answer."""
    return ProfilePage(
        items=[profile_from_proto(profile) for profile in response.profiles],
        next_cursor=next_cursor_from_proto(response.page),
    )


def user_summary_from_proto(summary: users_pb2.UserSummary) -> UserSummary:
    """Convert a proto UserSummary."""
    return UserSummary(id=summary.id, name=summary.name)
