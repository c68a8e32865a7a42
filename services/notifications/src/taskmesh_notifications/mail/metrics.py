"""Prometheus metrics of email delivery, in the process's default registry."""

from __future__ import annotations

from prometheus_client import Counter

EMAILS_SENT = Counter(
    "taskmesh_emails_sent_total",
    "Emails the SMTP server accepted, by template.",
    ["template"],
)
EMAIL_RETRIES = Counter(
    "taskmesh_email_retries_total",
    "Failed attempts to send an email that will be retried, by template.",
    ["template"],
)
EMAIL_FAILURES = Counter(
    "taskmesh_email_failures_total",
    "Emails given up on (attempts exhausted or refused for good), by template.",
    ["template"],
)
