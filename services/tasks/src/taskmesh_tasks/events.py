"""The `task.*` events the tasks service publishes, the Task message they carry, and the
events it consumes."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.events.v1 import events_pb2
from taskmesh.tasks.v1 import tasks_pb2

from taskmesh_tasks.domain import Change, Priority, Status, Task

EVENT_SOURCE: Final = "taskmesh/tasks"

TASK_CREATED: Final = "task.created"
TASK_UPDATED: Final = "task.updated"
TASK_ASSIGNED: Final = "task.assigned"
TASK_COMPLETED: Final = "task.completed"
TASK_DELETED: Final = "task.deleted"

USER_DELETED: Final = "user.deleted"
"""Consumed: the account is gone; its tasks are deleted and its assignments undone (purge.py)."""

STATUS_TO_PROTO: Final = {
    Status.TODO: tasks_pb2.STATUS_TODO,
    Status.IN_PROGRESS: tasks_pb2.STATUS_IN_PROGRESS,
    Status.DONE: tasks_pb2.STATUS_DONE,
}
PRIORITY_TO_PROTO: Final = {
    Priority.LOW: tasks_pb2.PRIORITY_LOW,
    Priority.MEDIUM: tasks_pb2.PRIORITY_MEDIUM,
    Priority.HIGH: tasks_pb2.PRIORITY_HIGH,
    Priority.URGENT: tasks_pb2.PRIORITY_URGENT,
}


def timestamp(moment: datetime) -> Timestamp:
    """The protobuf Timestamp of a moment."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def task_to_proto(task: Task) -> tasks_pb2.Task:
    """The Task message of a task."""
    fields = task.fields
    message = tasks_pb2.Task(
        id=task.id,
        owner_id=task.owner_id,
        title=fields.title,
        description=fields.description,
        status=STATUS_TO_PROTO[fields.status],
        priority=PRIORITY_TO_PROTO[fields.priority],
        tags=list(fields.tags),
        created_at=timestamp(task.created_at),
        updated_at=timestamp(task.updated_at),
        version=task.version,
    )
    if fields.assignee_id is not None:
        message.assignee_id = fields.assignee_id
    if fields.due_at is not None:
        message.due_at.CopyFrom(timestamp(fields.due_at))
    if task.completed_at is not None:
        message.completed_at.CopyFrom(timestamp(task.completed_at))
    return message


def task_created(task: Task, actor_id: str) -> Message:
    """A new task (owner and assignee ids are in the task)."""
    return events_pb2.TaskCreated(task=task_to_proto(task), actor_id=actor_id)


def task_updated(change: Change, actor_id: str) -> Message:
    """A task changed: the task after the change and the names of the fields that changed."""
    changed = list(change.changed_fields)
    if change.before.completed_at != change.after.completed_at:
        changed.append("completed_at")
    previous_assignee = change.before.assignee_id
    left = previous_assignee if previous_assignee != change.after.assignee_id else None
    return events_pb2.TaskUpdated(
        task=task_to_proto(change.after),
        changed_fields=changed,
        actor_id=actor_id,
        previous_assignee_id=left or "",
    )


def task_assigned(task: Task, previous_assignee_id: str | None, actor_id: str) -> Message:
    """The task has a new assignee (who is in the task)."""
    return events_pb2.TaskAssigned(
        task=task_to_proto(task),
        previous_assignee_id=previous_assignee_id or "",
        actor_id=actor_id,
    )


def task_completed(task: Task, actor_id: str) -> Message:
    """The task's status became done."""
    return events_pb2.TaskCompleted(task=task_to_proto(task), actor_id=actor_id)


def task_deleted(task: Task, actor_id: str) -> Message:
    """The task is gone, with its attachments."""
    return events_pb2.TaskDeleted(
        task_id=task.id,
        owner_id=task.owner_id,
        assignee_id=task.assignee_id or "",
        actor_id=actor_id,
    )
