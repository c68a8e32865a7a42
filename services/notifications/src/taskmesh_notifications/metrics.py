"""Prometheus metrics of the notifications service (email metrics live in `mail`)."""

from __future__ import annotations

from prometheus_client import Counter

NOTIFICATIONS_CREATED = Counter(
    "taskmesh_notifications_created_total",
    "In-app notifications created, by type.",
    ["type"],
)
REMINDERS = Counter(
    "taskmesh_notification_reminders_total",
    "Due-soon reminders the scheduler handled, by outcome: sent; taken (by another instance,"
    " or the task changed since the scan); duplicate (that due date was reminded of before);"
    " failed.",
    ["outcome"],
)
