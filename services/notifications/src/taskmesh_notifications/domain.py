"""The notifications model and its rules: who is told what, and how it reads.

Nothing here knows gRPC, MongoDB or SMTP. A notification is an in-app message to one user;
the rules below decide, from a task's state and who changed it, which users get one, and
build its title and body. Recipients are the service's read copies of the users' profiles
(address, name, time zone, email preference); task copies hold what a reminder needs.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

import structlog
from taskmesh_chassis.errors import NotFound
from taskmesh_chassis.mongo import is_object_id as is_object_id

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]

DEFAULT_TIMEZONE: Final = "UTC"
DEFAULT_EMAIL_NOTIFICATIONS: Final = True


class NotificationType(StrEnum):
    """What caused a notification (its `type` on the wire)."""

    TASK_ASSIGNED = "task.assigned"
    TASK_COMPLETED = "task.completed"
    TASK_DUE_SOON = "task.due_soon"


# --- time ------------------------------------------------------------------------------


def to_millisecond(moment: datetime) -> datetime:
    """The moment in UTC cut to the millisecond (what MongoDB stores, so reads compare equal)."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def utc_now() -> datetime:
    """The current time in UTC, to the millisecond."""
    return to_millisecond(datetime.now(UTC))


def rfc3339(moment: datetime) -> str:
    """The moment as RFC 3339 in UTC with milliseconds and a `Z`: `2026-11-28T09:42:14.123Z`."""
    return to_millisecond(moment).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone `name`, or UTC (logged) when this process does not know it.

    The users service accepts only names it knows; a name unknown here can only come from
    a newer time-zone database there, and an email with the time in UTC (which it says)
    beats no email.
    """
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        log.warning("notifications.unknown_timezone", timezone=name)
        return zoneinfo.ZoneInfo(DEFAULT_TIMEZONE)


def format_local(moment: datetime, timezone: str) -> str:
    """A moment as a reader in `timezone` sees it: `2026-11-29 14:00 Europe/Paris`."""
    zone = time_zone(timezone)
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M} {zone.key}"


# --- ids --------------------------------------------------------------------------------


# --- the model --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A notification to create: its recipient and what it says."""

    user_id: str
    type: NotificationType
    title: str
    body: str
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A stored in-app notification."""

    id: str
    user_id: str
    type: str
    title: str
    body: str
    task_id: str | None
    read: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Recipient:
    """The read copy of a user's profile: where and how to reach them."""

    user_id: str
    email: str
    name: str
    timezone: str = DEFAULT_TIMEZONE
    email_notifications: bool = DEFAULT_EMAIL_NOTIFICATIONS


@dataclass(frozen=True, slots=True)
class TaskCopy:
    """What this service keeps of a task (from `task.*` events): enough to remind and notify."""

    id: str
    owner_id: str
    assignee_id: str | None
    title: str
    due_at: datetime | None
    done: bool
    version: int

    @property
    def needs_reminder(self) -> bool:
        """Whether a due-soon reminder may still be due: a due date and not done."""
        return self.due_at is not None and not self.done

    def people(self) -> list[str]:
        """The owner and, if someone else, the assignee: who a reminder goes to."""
        people = [self.owner_id]
        if self.assignee_id is not None and self.assignee_id != self.owner_id:
            people.append(self.assignee_id)
        return people


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking: the user id of the verified caller."""

    user_id: str


# --- errors -----------------------------------------------------------------------------


class NotificationNotFound(NotFound):
    """No notification with that id belongs to the caller (or the id is malformed)."""

    default_message = "notification not found"


# --- the rules --------------------------------------------------------------------------


def reminder_key(task_id: str, due_at: datetime) -> str:
    """The unique key of a task's due-soon reminder for one due date."""
    return f"{task_id}:{rfc3339(due_at)}"


def assignment_notice(task: TaskCopy, actor_id: str, actor_name: str) -> NewNotification | None:
    """The new assignee's notification, unless they assigned the task to themself."""
    if task.assignee_id is None or task.assignee_id == actor_id:
        return None
    by = f"{actor_name} assigned you" if actor_name else "You were assigned"
    return NewNotification(
        user_id=task.assignee_id,
        type=NotificationType.TASK_ASSIGNED,
        title="Task assigned to you",
        body=f"{by} “{task.title}”.",
        task_id=task.id,
    )


def completion_notice(task: TaskCopy, actor_id: str, actor_name: str) -> NewNotification | None:
    """The owner's notification when the assignee (not the owner) completed the task."""
    if task.assignee_id is None or actor_id != task.assignee_id or actor_id == task.owner_id:
        return None
    who = actor_name or "The assignee"
    return NewNotification(
        user_id=task.owner_id,
        type=NotificationType.TASK_COMPLETED,
        title="Task completed",
        body=f"{who} completed “{task.title}”.",
        task_id=task.id,
    )


def due_soon_notice(task: TaskCopy, user_id: str, due_local: str) -> NewNotification:
    """A reminder to one of the task's people that its due date is near."""
    return NewNotification(
        user_id=user_id,
        type=NotificationType.TASK_DUE_SOON,
        title="Task due soon",
        body=f"“{task.title}” is due {due_local}.",
        task_id=task.id,
    )
