"""The `user.*` events the users service consumes: profiles kept in step with auth's accounts.

Each handler runs in the consumer's transaction (docs/events.md) and writes only through
its session. The queue is bound with these exact types, never `user.*`: other user events
(password changes, profile updates) would otherwise arrive and be dead-lettered as unknown.

- `user.registered`: the profile, unless it exists (CreateProfile may have been first) or
  the user is deleted (a redelivery or replay after `user.deleted`).
- `user.role_changed`, `user.deactivated`, `user.reactivated`: the copy of the role or the
  active flag, if the event is newer than the last change applied to that field (so a
  retried or replayed event never undoes a newer state). Auth publishes `user.registered`
  first, in the registering transaction; an identity event that still finds no profile
  (its `user.registered` is being retried) fails, and so is retried later. For a deleted
  user it does nothing.
- `user.deleted`: the profile is deleted and the user's tombstone kept.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any, Final, TypeVar

import structlog
from google.protobuf.message import Message
from pymongo.asynchronous.client_session import AsyncClientSession
from taskmesh.common.v1 import common_pb2
from taskmesh.events.v1 import events_pb2
from taskmesh_chassis.errors import InvalidArgument
from taskmesh_chassis.events import Event, Handler, UnprocessableEvent

from taskmesh_users.domain import (
    Account,
    Role,
    check_name,
    is_object_id,
    new_profile,
    to_millisecond,
)
from taskmesh_users.repository import IdentityCopies, IdentityField, Outcome

log = structlog.get_logger(__name__)

USER_REGISTERED: Final = "user.registered"
USER_ROLE_CHANGED: Final = "user.role_changed"
USER_DEACTIVATED: Final = "user.deactivated"
USER_REACTIVATED: Final = "user.reactivated"
USER_DELETED: Final = "user.deleted"

_ROLES: Final = {common_pb2.ROLE_USER: Role.USER, common_pb2.ROLE_ADMIN: Role.ADMIN}

PayloadT = TypeVar("PayloadT", bound=Message)


class ProfileNotCreatedYet(Exception):
    """An identity change arrived before its user's `user.registered` was applied: retry later."""


def payload_of(event: Event, payload_type: type[PayloadT]) -> PayloadT:
    """The event's payload, which must be a `payload_type` (UnprocessableEvent otherwise)."""
    if not isinstance(event.payload, payload_type):
        raise UnprocessableEvent(f"{event.type} carries {event.data_schema}")
    return event.payload


def checked_user_id(user_id: str) -> str:
    """The payload's user id, which must be an ObjectId in hex (UnprocessableEvent otherwise)."""
    if not is_object_id(user_id):
        raise UnprocessableEvent("the payload's user_id is not a user id")
    return user_id


def checked_role(role: Any) -> Role:
    """The payload's role, which must be a known one (UnprocessableEvent otherwise)."""
    known = _ROLES.get(role)
    if known is None:
        raise UnprocessableEvent(f"unknown role {role!r}")
    return known


def account_registered(payload: events_pb2.UserRegistered) -> tuple[Account, str]:
    """The account a `user.registered` event announces, and the name it was registered with."""
    if not payload.email or not payload.HasField("registered_at"):
        raise UnprocessableEvent("user.registered without email or registered_at")
    try:
        name = check_name(payload.name)
    except InvalidArgument:
        raise UnprocessableEvent("user.registered with an invalid name") from None
    account = Account(
        id=checked_user_id(payload.user_id),
        email=payload.email,
        role=checked_role(payload.role),
        active=True,
        created_at=payload.registered_at.ToDatetime(tzinfo=UTC),
    )
    return account, name


class IdentityEvents:
    """The handlers of auth's events, over the read copies they change."""

    def __init__(self, copies: IdentityCopies) -> None:
        self._copies = copies

    def handlers(self) -> dict[str, Handler]:
        """The handler of each event type consumed, by its exact routing key."""
        return {
            USER_REGISTERED: self.registered,
            USER_ROLE_CHANGED: self.role_changed,
            USER_DEACTIVATED: self.deactivated,
            USER_REACTIVATED: self.reactivated,
            USER_DELETED: self.deleted,
        }

    async def registered(self, event: Event, session: AsyncClientSession) -> None:
        """Create the new account's profile unless it exists or the user is deleted."""
        account, name = account_registered(payload_of(event, events_pb2.UserRegistered))
        outcome = await self._copies.create(new_profile(account, name), session)
        log.info("profile.copy_created", user_id=account.id, outcome=outcome.value)

    async def role_changed(self, event: Event, session: AsyncClientSession) -> None:
        """Copy the new role, unless a newer role change was applied already."""
        payload = payload_of(event, events_pb2.UserRoleChanged)
        role = checked_role(payload.new_role)
        await self._change(event, payload.user_id, IdentityField.ROLE, role.value, session)

    async def deactivated(self, event: Event, session: AsyncClientSession) -> None:
        """Mark the profile inactive, unless a newer (re)activation was applied already."""
        payload = payload_of(event, events_pb2.UserDeactivated)
        await self._change(event, payload.user_id, IdentityField.ACTIVE, False, session)

    async def reactivated(self, event: Event, session: AsyncClientSession) -> None:
        """Mark the profile active, unless a newer (de)activation was applied already."""
        payload = payload_of(event, events_pb2.UserReactivated)
        await self._change(event, payload.user_id, IdentityField.ACTIVE, True, session)

    async def deleted(self, event: Event, session: AsyncClientSession) -> None:
        """Delete the profile and keep the user's tombstone."""
        user_id = checked_user_id(payload_of(event, events_pb2.UserDeleted).user_id)
        outcome = await self._copies.delete(user_id, to_millisecond(event.time), session)
        log.info("profile.copy_deleted", user_id=user_id, outcome=outcome.value)

    async def _change(
        self,
        event: Event,
        user_id: str,
        field: IdentityField,
        value: Any,
        session: AsyncClientSession,
    ) -> None:
        user_id = checked_user_id(user_id)
        at = to_millisecond(event.time)
        outcome = await self._copies.change(user_id, field, value, at, session)
        if outcome is Outcome.MISSING:
            raise ProfileNotCreatedYet(f"no profile yet for {event.type} of {user_id}")
        log.info("profile.copy_changed", user_id=user_id, field=field.value, outcome=outcome.value)
