"""The gRPC edge of the users service: protobuf messages in, use cases, messages out.

The caller is the one the verified access token names (taskmesh_chassis.identity); admin
RPCs check the token's role. Domain errors become their gRPC status in the chassis' error
scope.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.common.v1 import common_pb2
from taskmesh.users.v1 import users_pb2, users_pb2_grpc
from taskmesh_chassis.identity import require_caller

from taskmesh_users.domain import EDITABLE_FIELDS, Profile, Role, Viewer, invalid
from taskmesh_users.listing import ProfileFilter
from taskmesh_users.service import UsersService, require_admin

SERVICE_NAME: str = users_pb2.DESCRIPTOR.services_by_name["UsersService"].full_name

ROLE_TO_PROTO: Final = {Role.USER: common_pb2.ROLE_USER, Role.ADMIN: common_pb2.ROLE_ADMIN}
_ROLES: Final = {proto: role for role, proto in ROLE_TO_PROTO.items()}


def current_viewer() -> Viewer:
    """The verified caller of this RPC; Unauthenticated when there is none."""
    caller = require_caller()
    return Viewer(user_id=caller.user_id, is_admin=caller.is_admin)


def timestamp(moment: datetime) -> Timestamp:
    """The protobuf Timestamp of a moment."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def profile_to_proto(profile: Profile) -> users_pb2.Profile:
    """The Profile message of a profile."""
    return users_pb2.Profile(
        id=profile.id,
        email=profile.email,
        name=profile.name,
        bio=profile.bio,
        timezone=profile.timezone,
        email_notifications=profile.email_notifications,
        role=ROLE_TO_PROTO[profile.role],
        active=profile.active,
        created_at=timestamp(profile.created_at),
        updated_at=timestamp(profile.updated_at),
    )


def changes_from(request: users_pb2.UpdateProfileRequest) -> dict[str, Any]:
    """The fields an UpdateProfileRequest sets (unset ones stay unchanged)."""
    return {field: getattr(request, field) for field in EDITABLE_FIELDS if request.HasField(field)}


def profile_filter_from(request: users_pb2.ListUsersRequest) -> ProfileFilter:
    """The list filters of a ListUsersRequest; InvalidArgument for an unknown role."""
    role = None
    if request.role != common_pb2.ROLE_UNSPECIFIED:
        if request.role not in _ROLES:
            raise invalid(("query", "role"), "must be user or admin")
        role = _ROLES[request.role]
    return ProfileFilter(
        text=request.q,
        role=role,
        active=request.active if request.HasField("active") else None,
    )


class UsersServicer(users_pb2_grpc.UsersServiceServicer):  # type: ignore[misc]
    """Serves taskmesh.users.v1.UsersService."""

    def __init__(self, service: UsersService) -> None:
        self._service = service

    async def CreateProfile(
        self, request: users_pb2.CreateProfileRequest, context: Any
    ) -> users_pb2.Profile:
        """Create the caller's profile unless it exists; identity copied from auth."""
        profile = await self._service.create_profile(current_viewer(), request.name)
        return profile_to_proto(profile)

    async def GetProfile(
        self, request: users_pb2.GetProfileRequest, context: Any
    ) -> users_pb2.Profile:
        """Return the caller's profile."""
        return profile_to_proto(await self._service.get_profile(current_viewer()))

    async def UpdateProfile(
        self, request: users_pb2.UpdateProfileRequest, context: Any
    ) -> users_pb2.Profile:
        """Change the set fields of the caller's profile."""
        profile = await self._service.update_profile(current_viewer(), changes_from(request))
        return profile_to_proto(profile)

    async def LookupByEmail(
        self, request: users_pb2.LookupByEmailRequest, context: Any
    ) -> users_pb2.UserSummary:
        """Find an active user by exact, case-insensitive email (any signed-in caller)."""
        require_caller()
        profile = await self._service.lookup_by_email(request.email)
        return users_pb2.UserSummary(id=profile.id, name=profile.name)

    async def ListUsers(
        self, request: users_pb2.ListUsersRequest, context: Any
    ) -> users_pb2.ListUsersResponse:
        """List profiles, filtered and paged by cursor (admins)."""
        viewer = current_viewer()
        require_admin(viewer)  # before the request's values are looked at
        page = await self._service.list_users(
            viewer,
            profile_filter=profile_filter_from(request),
            limit=request.page.limit,
            cursor=request.page.cursor,
        )
        return users_pb2.ListUsersResponse(
            profiles=[profile_to_proto(profile) for profile in page.profiles],
            page=common_pb2.PageInfo(next_cursor=page.next_cursor or ""),
        )

    async def GetUser(self, request: users_pb2.GetUserRequest, context: Any) -> users_pb2.Profile:
        """Return any user's profile (admins)."""
        return profile_to_proto(await self._service.get_user(current_viewer(), request.user_id))
