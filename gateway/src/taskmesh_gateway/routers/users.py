"""`/api/v1/users`: profiles, assignee lookup, and user administration.

Profiles (name, bio, time zone, email preference) belong to the users service; role, active
flag and the account itself to auth. So the routes that change or delete an account call
auth (`UpdateUser`, `DeleteUser`), and those that read profiles call users, whose copies of
role and active follow auth's `user.*` events.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import StringConstraints
from taskmesh.auth.v1 import auth_pb2
from taskmesh.users.v1 import users_pb2

from taskmesh_gateway.dependencies import AdminUser, Clients, CurrentUser
from taskmesh_gateway.schemas.auth import Role, role_to_proto
from taskmesh_gateway.schemas.common import Cursor, Limit, ResourceId, page_request
from taskmesh_gateway.schemas.problems import problem_responses
from taskmesh_gateway.schemas.users import (
    Profile,
    ProfilePage,
    ProfileUpdate,
    UserSummary,
    UserUpdate,
    profile_from_proto,
    profile_page_from_proto,
    user_summary_from_proto,
    with_standing_of,
)

router = APIRouter(prefix="/api/v1/users", tags=["users"])

UserId = Annotated[ResourceId, Path(alias="id")]


@router.get("/me", responses=problem_responses(401, 404))
async def read_my_profile(caller: CurrentUser, clients: Clients) -> Profile:
    """Return the caller's profile."""
    return profile_from_proto(await clients.users.GetProfile(users_pb2.GetProfileRequest()))


@router.patch("/me", responses=problem_responses(401, 404, 422))
async def update_my_profile(body: ProfileUpdate, caller: CurrentUser, clients: Clients) -> Profile:
    """Change the caller's name, bio, time zone or email preference."""
    return profile_from_proto(await clients.users.UpdateProfile(body.to_proto()))


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 409))
async def delete_me(caller: CurrentUser, clients: Clients) -> None:
    """Delete the caller's account; tokens, tasks, attachments and notifications follow.

    Sign-in stops at once; the other services delete the user's data from `user.deleted`.
    The last active admin cannot delete themself (409).
    """
    await clients.auth.DeleteUser(auth_pb2.DeleteUserRequest(user_id=caller.user_id))


@router.get("/lookup", responses=problem_responses(401, 404, 422))
async def lookup_user(
    email: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=320),
        Query(description="Exact email address, compared case-insensitively"),
    ],
    caller: CurrentUser,
    clients: Clients,
) -> UserSummary:
    """Find an active user by exact email, to choose an assignee."""
    reply = await clients.users.LookupByEmail(users_pb2.LookupByEmailRequest(email=email))
    return user_summary_from_proto(reply)


@router.get("", responses=problem_responses(401, 403, 422))
async def list_users(
    caller: AdminUser,
    clients: Clients,
    q: Annotated[
        str | None, Query(max_length=200, description="Substring of name or email")
    ] = None,
    role: Role | None = None,
    active: bool | None = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> ProfilePage:
    """List profiles (admins)."""
    request = users_pb2.ListUsersRequest(
        page=page_request(limit, cursor),
        q=q or "",
        role=role_to_proto(role) if role is not None else None,
        active=active,
    )
    return profile_page_from_proto(await clients.users.ListUsers(request))


@router.get("/{id}", responses=problem_responses(401, 403, 404))
async def read_user(user_id: UserId, caller: AdminUser, clients: Clients) -> Profile:
    """Return a user's profile (admins)."""
    return profile_from_proto(
        await clients.users.GetUser(users_pb2.GetUserRequest(user_id=user_id))
    )


@router.patch("/{id}", responses=problem_responses(401, 403, 404, 409, 422))
async def update_user(
    user_id: UserId, body: UserUpdate, caller: AdminUser, clients: Clients
) -> Profile:
    """Change a user's role or active flag (admins; never their own, nor the last admin's).

    Auth makes the change; the profile comes from users with role and active as auth
    answered them, since the users service's copies follow by event a moment later.
    """
    standing = await clients.auth.UpdateUser(body.to_proto(user_id))
    profile = await clients.users.GetUser(users_pb2.GetUserRequest(user_id=user_id))
    return with_standing_of(profile_from_proto(profile), standing)


@router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
async def delete_user(user_id: UserId, caller: AdminUser, clients: Clients) -> None:
    """Delete a user's account and everything it owns (admins; never the last admin)."""
    await clients.auth.DeleteUser(auth_pb2.DeleteUserRequest(user_id=user_id))
