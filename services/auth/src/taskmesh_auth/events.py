"""The `user.*` events the auth service publishes, built from domain values (events.proto)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.common.v1 import common_pb2
from taskmesh.events.v1 import events_pb2

from taskmesh_auth.domain import Role, User

EVENT_SOURCE: Final = "taskmesh/auth"

USER_REGISTERED: Final = "user.registered"
USER_ROLE_CHANGED: Final = "user.role_changed"
USER_DEACTIVATED: Final = "user.deactivated"
USER_REACTIVATED: Final = "user.reactivated"
USER_DELETED: Final = "user.deleted"
USER_PASSWORD_CHANGED: Final = "user.password_changed"  # noqa: S105 - an event type
USER_PASSWORD_RESET_REQUESTED: Final = "user.password_reset_requested"  # noqa: S105

_ROLES: Final = {Role.USER: common_pb2.ROLE_USER, Role.ADMIN: common_pb2.ROLE_ADMIN}


def role_to_proto(role: Role) -> common_pb2.Role:
    """The proto value of a role."""
    return _ROLES[role]


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def user_registered(user: User, name: str) -> Message:
    """A new account (the users service creates its profile with `name`)."""
    return events_pb2.UserRegistered(
        user_id=user.id,
        email=user.email,
        name=name,
        role=role_to_proto(user.role),
        registered_at=_timestamp(user.created_at),
    )


def user_role_changed(before: User, after: User, actor_id: str) -> Message:
    """An admin (or, with an empty actor, the operator's bootstrap) changed a role."""
    return events_pb2.UserRoleChanged(
        user_id=after.id,
        old_role=role_to_proto(before.role),
        new_role=role_to_proto(after.role),
        actor_id=actor_id,
    )


def user_deactivated(user: User, actor_id: str) -> Message:
    """An account may no longer sign in."""
    return events_pb2.UserDeactivated(user_id=user.id, actor_id=actor_id)


def user_reactivated(user: User, actor_id: str) -> Message:
    """A deactivated account may sign in again."""
    return events_pb2.UserReactivated(user_id=user.id, actor_id=actor_id)


def user_deleted(user: User, actor_id: str) -> Message:
    """An account is gone; everything it owns is to be deleted."""
    return events_pb2.UserDeleted(user_id=user.id, email=user.email, actor_id=actor_id)


def user_password_changed(user: User, changed_at: datetime, *, via_reset: bool) -> Message:
    """The password changed, by its owner or with a reset token."""
    return events_pb2.UserPasswordChanged(
        user_id=user.id, email=user.email, changed_at=_timestamp(changed_at), via_reset=via_reset
    )


def user_password_reset_requested(user: User, reset_token: str, expires_at: datetime) -> Message:
    """A reset email is due; it carries the token in clear (only notifications reads it)."""
    return events_pb2.UserPasswordResetRequested(
        user_id=user.id,
        email=user.email,
        reset_token=reset_token,
        expires_at=_timestamp(expires_at),
    )
