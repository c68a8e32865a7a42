"""The emails the rules send, as messages for the queue (`mail`), each with its unique key.

The key makes an email go out once however often its cause is handled: for an event,
`<template>:<event id>:<user id>`; for a reminder, `task_due_soon:<task id>:<due date>:<user id>`
(one per task, due date and person). Context values are the templates' own (mail/templates.py).
"""

from __future__ import annotations

from datetime import datetime

from taskmesh_notifications.domain import Recipient, TaskCopy, rfc3339
from taskmesh_notifications.mail.queue import EmailMessage
from taskmesh_notifications.mail.templates import EmailTemplate


def event_email_key(template: EmailTemplate, event_id: str, user_id: str) -> str:
    """The key of the email an event causes for one user."""
    return f"{template.value}:{event_id}:{user_id}"


def welcome_email(event_id: str, recipient: Recipient) -> EmailMessage:
    """The welcome email of a new user."""
    template = EmailTemplate.WELCOME
    return EmailMessage(
        key=event_email_key(template, event_id, recipient.user_id),
        to=recipient.email,
        user_id=recipient.user_id,
        template=template,
        context={"name": recipient.name},
    )


def password_reset_email(
    event_id: str, user_id: str, email: str, token: str, expires_at: datetime
) -> EmailMessage:
    """The email carrying a password-reset token, to the account's address."""
    template = EmailTemplate.PASSWORD_RESET
    return EmailMessage(
        key=event_email_key(template, event_id, user_id),
        to=email,
        user_id=user_id,
        template=template,
        context={"token": token, "expires_at": rfc3339(expires_at)},
    )


def task_assigned_email(
    event_id: str, recipient: Recipient, task: TaskCopy, assigned_by: str
) -> EmailMessage:
    """The email telling a user a task was assigned to them (`assigned_by` may be empty)."""
    template = EmailTemplate.TASK_ASSIGNED
    return EmailMessage(
        key=event_email_key(template, event_id, recipient.user_id),
        to=recipient.email,
        user_id=recipient.user_id,
        template=template,
        context={
            "name": recipient.name,
            "task_id": task.id,
            "task_title": task.title,
            "assigned_by": assigned_by,
        },
    )


def due_soon_email(recipient: Recipient, task: TaskCopy, due_local: str) -> EmailMessage:
    """The reminder that a task is due soon, its due date in the recipient's time zone."""
    assert task.due_at is not None
    template = EmailTemplate.TASK_DUE_SOON
    return EmailMessage(
        key=f"{template.value}:{task.id}:{rfc3339(task.due_at)}:{recipient.user_id}",
        to=recipient.email,
        user_id=recipient.user_id,
        template=template,
        context={
            "name": recipient.name,
            "task_id": task.id,
            "task_title": task.title,
            "due_at": due_local,
        },
    )
