"""The events the notifications service consumes, and what each one does here.

Each handler runs in the consumer's transaction (docs/events.md) and writes only through
its session: read copies, notifications with their `notification.created` events, and
email records, all committed with the event's id, so a redelivered event changes nothing
more. The queue is bound with these exact types, never `user.*` or `task.*`.

- `user.registered`: the user's recipient copy (unless deleted); the welcome email if the
  copy wants email.
- `user.profile_updated`: the copy, if the event is newer than the one last applied.
- `user.deleted`: the user's notifications and copy deleted, the tombstone kept.
- `user.password_reset_requested`: the reset email to the event's address, whatever the
  preference (not for a deleted user).
- `task.created`, `task.updated`: the task's copy (its due date, for reminders), if newer.
- `task.assigned`: the copy; an in-app notification for the new assignee, and an email if
  they want email — not when they assigned the task to themself.
- `task.completed`: the copy; an in-app notification for the owner when the assignee, not
  the owner, completed it.
- `task.deleted`: the copy replaced by a tombstone (no reminder).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta
from functools import partial
from typing import Final, TypeVar

import structlog
from google.protobuf.message import Message
from pymongo.asynchronous.client_session import AsyncClientSession
from taskmesh.events.v1 import events_pb2
from taskmesh.tasks.v1 import tasks_pb2
from taskmesh_chassis.events import Event, Handler, UnprocessableEvent

from taskmesh_notifications.domain import (
    DEFAULT_TIMEZONE,
    Clock,
    Recipient,
    TaskCopy,
    assignment_notice,
    completion_notice,
    is_object_id,
    to_millisecond,
    utc_now,
)
from taskmesh_notifications.emails import password_reset_email, task_assigned_email, welcome_email
from taskmesh_notifications.mail.errors import InvalidEmail
from taskmesh_notifications.notifier import Notifier
from taskmesh_notifications.repository import (
    DueTasks,
    MongoNotificationStore,
    RecipientCopies,
    RecipientLookup,
)

log = structlog.get_logger(__name__)

USER_REGISTERED: Final = "user.registered"
USER_PROFILE_UPDATED: Final = "user.profile_updated"
USER_DELETED: Final = "user.deleted"
USER_PASSWORD_RESET_REQUESTED: Final = "user.password_reset_requested"  # noqa: S105 - an event type
TASK_CREATED: Final = "task.created"
TASK_UPDATED: Final = "task.updated"
TASK_ASSIGNED: Final = "task.assigned"
TASK_COMPLETED: Final = "task.completed"
TASK_DELETED: Final = "task.deleted"

PayloadT = TypeVar("PayloadT", bound=Message)


class RecipientNotCopiedYet(Exception):
    """A notification is due to a user whose `user.registered` was not applied yet: retry."""


def recipient_wait_s(retry_delays_s: Sequence[float]) -> float:
    """How long after its event a handler waits (by failing) for a missing recipient copy.

    The sum of every retry delay but the last: the last attempt of an event comes at least
    the sum of all delays after it, so it is past the wait and notifies without email,
    even with the publisher's clock up to the last delay ahead of ours. The event is never
    dead-lettered for the missing copy.
    """
    return float(sum(retry_delays_s[:-1]))


def payload_of(event: Event, payload_type: type[PayloadT]) -> PayloadT:
    """The event's payload, which must be a `payload_type` (UnprocessableEvent otherwise)."""
    if not isinstance(event.payload, payload_type):
        raise UnprocessableEvent(f"{event.type} carries {event.data_schema}")
    return event.payload


def checked_id(value: str, what: str) -> str:
    """An id of the payload, which must be 24 hex digits (UnprocessableEvent otherwise)."""
    if not is_object_id(value):
        raise UnprocessableEvent(f"the payload's {what} is not an id")
    return value


def task_copy_from(task: tasks_pb2.Task) -> TaskCopy:
    """The copy of the Task an event carries; UnprocessableEvent if it is not a valid task."""
    if task.version < 1:
        raise UnprocessableEvent("the payload's task has no version")
    return TaskCopy(
        id=checked_id(task.id, "task id"),
        owner_id=checked_id(task.owner_id, "owner id"),
        assignee_id=(
            checked_id(task.assignee_id, "assignee id") if task.HasField("assignee_id") else None
        ),
        title=task.title,
        due_at=(
            to_millisecond(task.due_at.ToDatetime(tzinfo=UTC)) if task.HasField("due_at") else None
        ),
        done=task.status == tasks_pb2.STATUS_DONE,
        version=task.version,
    )


class NotificationEvents:
    """The handlers of the events this service consumes, over its stores."""

    def __init__(
        self,
        notifications: MongoNotificationStore,
        recipients: RecipientCopies,
        tasks: DueTasks,
        notifier: Notifier,
        *,
        recipient_wait_s: float,
        clock: Clock = utc_now,
    ) -> None:
        self._notifications = notifications
        self._recipients = recipients
        self._tasks = tasks
        self._notifier = notifier
        self._recipient_wait = timedelta(seconds=recipient_wait_s)
        self._clock = clock

    def handlers(self) -> dict[str, Handler]:
        """The handler of each event type consumed, by its exact routing key."""
        return {
            USER_REGISTERED: self.user_registered,
            USER_PROFILE_UPDATED: self.profile_updated,
            USER_DELETED: self.user_deleted,
            USER_PASSWORD_RESET_REQUESTED: self.password_reset_requested,
            TASK_CREATED: self.task_changed,
            TASK_UPDATED: self.task_changed,
            TASK_ASSIGNED: self.task_assigned,
            TASK_COMPLETED: self.task_completed,
            TASK_DELETED: self.task_deleted,
        }

    # --- user.* ---------------------------------------------------------------------------

    async def user_registered(self, event: Event, session: AsyncClientSession) -> None:
        """Copy the new user's address and name; queue the welcome email if they want email."""
        payload = payload_of(event, events_pb2.UserRegistered)
        user_id = checked_id(payload.user_id, "user id")
        email = payload.email.strip().lower()
        if not email:
            raise UnprocessableEvent("user.registered without an email")
        registered_at = (
            payload.registered_at.ToDatetime(tzinfo=UTC)
            if payload.HasField("registered_at")
            else event.time
        )
        copy = Recipient(user_id=user_id, email=email, name=payload.name.strip())
        stored = await self._recipients.register(copy, to_millisecond(registered_at), session)
        recipient = stored.recipient
        if recipient is None:
            log.info(
                "notifications.recipient_deleted_skipped", user_id=user_id, event_type=event.type
            )
            return
        log.info("notifications.recipient_registered", user_id=user_id)
        if recipient.email_notifications:
            await self._notifier.email(
                partial(welcome_email, event.id, recipient), session, user_id=user_id
            )

    async def profile_updated(self, event: Event, session: AsyncClientSession) -> None:
        """Copy the profile, unless a newer profile was applied or the user is deleted."""
        payload = payload_of(event, events_pb2.UserProfileUpdated)
        user_id = checked_id(payload.user_id, "user id")
        email = payload.email.strip().lower()
        if not email:
            raise UnprocessableEvent("user.profile_updated without an email")
        copy = Recipient(
            user_id=user_id,
            email=email,
            name=payload.name.strip(),
            timezone=payload.timezone or DEFAULT_TIMEZONE,
            email_notifications=payload.email_notifications,
        )
        outcome = await self._recipients.update(copy, to_millisecond(event.time), session)
        log.info("notifications.recipient_updated", user_id=user_id, outcome=outcome.value)

    async def user_deleted(self, event: Event, session: AsyncClientSession) -> None:
        """The account is gone: its notifications, emails and copy go too; the tombstone stays."""
        user_id = checked_id(payload_of(event, events_pb2.UserDeleted).user_id, "user id")
        deleted = await self._notifications.delete_all_of(user_id, session)
        emails = await self._notifier.forget_user(user_id, session)
        outcome = await self._recipients.delete(user_id, to_millisecond(event.time), session)
        log.info(
            "notifications.user_notifications_deleted",
            user_id=user_id,
            count=deleted,
            emails=emails,
        )
        log.info("notifications.recipient_deleted", user_id=user_id, outcome=outcome.value)

    async def password_reset_requested(self, event: Event, session: AsyncClientSession) -> None:
        """Queue the reset email to the event's address (the preference does not apply)."""
        payload = payload_of(event, events_pb2.UserPasswordResetRequested)
        user_id = checked_id(payload.user_id, "user id")
        email = payload.email.strip()
        if not email or not payload.reset_token or not payload.HasField("expires_at"):
            raise UnprocessableEvent("user.password_reset_requested without email, token or expiry")
        if await self._recipients.is_deleted(user_id, session):
            log.info(
                "notifications.recipient_deleted_skipped", user_id=user_id, event_type=event.type
            )
            return
        expires_at = payload.expires_at.ToDatetime(tzinfo=UTC)
        try:
            message = password_reset_email(
                event.id, user_id, email, payload.reset_token, expires_at
            )
        except InvalidEmail as error:
            # The email is all this event asks for: an operator should look at it.
            raise UnprocessableEvent(f"no reset email can be made: {error}") from None
        await self._notifier.email(lambda: message, session, user_id=user_id)

    # --- task.* ---------------------------------------------------------------------------

    async def task_changed(self, event: Event, session: AsyncClientSession) -> None:
        """`task.created` / `task.updated`: copy the task if the event is newer."""
        payload = event.payload
        if not isinstance(payload, events_pb2.TaskCreated | events_pb2.TaskUpdated):
            raise UnprocessableEvent(f"{event.type} carries {event.data_schema}")
        task = task_copy_from(payload.task)
        await self._tasks.apply(task, session)

    async def task_deleted(self, event: Event, session: AsyncClientSession) -> None:
        """Replace the task's copy by its tombstone: no reminder, no later event brings it back."""
        payload = payload_of(event, events_pb2.TaskDeleted)
        task_id = checked_id(payload.task_id, "task id")
        await self._tasks.delete(task_id, to_millisecond(event.time), session)

    async def task_assigned(self, event: Event, session: AsyncClientSession) -> None:
        """Copy the task; notify the new assignee in-app, and by email if they want it.

        Not when the assignee assigned it to themself, nor when the task was deleted or
        assigned to someone else since (a late event).
        """
        payload = payload_of(event, events_pb2.TaskAssigned)
        task = task_copy_from(payload.task)
        current = await self._tasks.apply(task, session)
        if current is None or current.assignee_id != task.assignee_id:
            log.info("notifications.stale_assignment_skipped", task_id=task.id)
            return
        actor_name = await self._name_of(payload.actor_id, session)
        notice = assignment_notice(task, payload.actor_id, actor_name)
        if notice is None:
            return
        assignee = await self._recipients.lookup(notice.user_id, session)
        if assignee.deleted:
            log.info("notifications.recipient_deleted_skipped", user_id=notice.user_id)
            return
        if assignee.recipient is None:
            self._wait_for_copy(event, notice.user_id)
        await self._notifier.notify(notice, session)
        recipient = assignee.recipient
        if recipient is not None and recipient.email_notifications:
            message = partial(task_assigned_email, event.id, recipient, task, actor_name)
            await self._notifier.email(message, session, user_id=recipient.user_id)

    async def task_completed(self, event: Event, session: AsyncClientSession) -> None:
        """Copy the task; notify the owner when the assignee (not the owner) completed it."""
        payload = payload_of(event, events_pb2.TaskCompleted)
        task = task_copy_from(payload.task)
        current = await self._tasks.apply(task, session)
        if current is None:
            log.info("notifications.deleted_task_skipped", task_id=task.id)
            return
        actor_id = payload.actor_id
        notice = completion_notice(task, actor_id, await self._name_of(actor_id, session))
        if notice is None:
            return
        if (await self._recipients.lookup(task.owner_id, session)).deleted:
            log.info("notifications.recipient_deleted_skipped", user_id=task.owner_id)
            return
        await self._notifier.notify(notice, session)

    # --- helpers --------------------------------------------------------------------------

    async def _name_of(self, user_id: str, session: AsyncClientSession) -> str:
        """The user's name from their copy; empty when there is none."""
        if not is_object_id(user_id):
            return ""
        lookup: RecipientLookup = await self._recipients.lookup(user_id, session)
        return lookup.recipient.name if lookup.recipient is not None else ""

    def _wait_for_copy(self, event: Event, user_id: str) -> None:
        """Fail (to be retried) while the event is young enough for the copy to arrive.

        Past the wait the notification goes out in-app only: the user has no copy here
        (registered before this service consumed events, or their registration is stuck).
        """
        if self._clock() - event.time < self._recipient_wait:
            raise RecipientNotCopiedYet(f"no recipient copy of {user_id} yet")
        log.warning("notifications.recipient_missing", user_id=user_id, event_type=event.type)
