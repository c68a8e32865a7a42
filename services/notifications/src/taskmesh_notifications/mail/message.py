"""The MIME message of one delivery: headers, and the two bodies as multipart/alternative."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, parseaddr

from taskmesh_notifications.mail.templates import RenderedEmail


def message_id(key: str, *, domain: str) -> str:
    """The Message-ID of the email with this key: the same on every attempt.

    A resend after a lost confirmation thus carries the Message-ID of the first send, which
    lets servers and mail clients recognise it as the same message.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def compose_message(
    rendered: RenderedEmail, *, key: str, sender: str, to: str, created_at: datetime
) -> MimeMessage:
    """Build the message: From, To, Subject, Date (when it was queued), Message-ID, bodies."""
    message = MimeMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(created_at)
    message["Message-ID"] = message_id(key, domain=parseaddr(sender)[1].rpartition("@")[2])
    # RFC 3834: a notification, not a person; auto-responders should not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
