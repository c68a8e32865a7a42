"""The account-deletion purge's rules, over fakes of the adapters: batches, passes, leases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from taskmesh_tasks.domain import PurgeJob, Task, check_fields
from taskmesh_tasks.events import TASK_DELETED, TASK_UPDATED
from taskmesh_tasks.purge import UserPurger

from .fakes import (
    ASSIGNEE,
    OWNER,
    STRANGER,
    FakeAttachmentStore,
    FakePurgeJobs,
    Harness,
    RecordingLists,
    make_harness,
)

ADMIN_ID = "65f0c0ffee00000000000009"


@pytest.fixture
def tasks() -> Harness:
    return make_harness()


async def create(tasks: Harness, owner_id: str, assignee_id: str | None = None) -> Task:
    viewer = OWNER if owner_id == OWNER.user_id else STRANGER
    values = check_fields({"title": "Write the report", "assignee_id": assignee_id})
    return (await tasks.service.create_task(viewer, values)).value


def purger_over(
    tasks: Harness,
    jobs: FakePurgeJobs,
    lists: RecordingLists,
    attachments: FakeAttachmentStore | None = None,
) -> UserPurger:
    return UserPurger(
        tasks.store,
        attachments or tasks.attachments,
        jobs,
        lists,
        batch_size=2,
        sweep_interval_s=5,
        clock=tasks.clock,
        holder="me",
    )


async def job_for(jobs: FakePurgeJobs, user_id: str) -> None:
    await jobs.record(PurgeJob(user_id, ADMIN_ID, datetime(2026, 1, 1, tzinfo=UTC)), session=None)


class ChangingOnce(FakeAttachmentStore):
    """Attachments whose first deletion coincides with somebody renaming the task."""

    def __init__(self, tasks: Harness) -> None:
        super().__init__()
        self._tasks = tasks
        self.changed: str | None = None

    async def delete_all(self, task_id: str) -> int:
        if self.changed is None:
            self.changed = task_id
            stored = self._tasks.store.tasks[task_id]
            self._tasks.store.tasks[task_id] = replace(stored, version=stored.version + 1)
        return await super().delete_all(task_id)


async def test_a_task_changed_during_its_batch_is_deleted_by_the_next_pass(
    tasks: Harness,
) -> None:
    owned = [await create(tasks, OWNER.user_id) for _ in range(3)]
    tasks.store.events.clear()
    jobs, lists = FakePurgeJobs(), RecordingLists()
    await job_for(jobs, OWNER.user_id)
    attachments = ChangingOnce(tasks)

    finished = await purger_over(tasks, jobs, lists, attachments).purge_claimable()

    deleted = [event.subject for event in tasks.store.events if event.type == TASK_DELETED]
    assert finished == 1
    assert tasks.store.tasks == {}
    assert sorted(deleted) == sorted(task.id for task in owned)
    assert attachments.changed in deleted


async def test_unassigning_names_only_the_assignee_field_and_bumps_the_version(
    tasks: Harness,
) -> None:
    task = await create(tasks, STRANGER.user_id, ASSIGNEE.user_id)
    tasks.store.events.clear()
    jobs, lists = FakePurgeJobs(), RecordingLists()
    await job_for(jobs, ASSIGNEE.user_id)

    await purger_over(tasks, jobs, lists).purge_claimable()

    stored = tasks.store.tasks[task.id]
    (payload,) = tasks.store.events_of(TASK_UPDATED)
    assert (stored.assignee_id, stored.version) == (None, 2)
    assert (list(payload.changed_fields), payload.actor_id) == (["assignee_id"], ADMIN_ID)
    assert lists.invalidated == [{STRANGER.user_id}]


async def test_a_job_leased_by_another_instance_is_left_alone(tasks: Harness) -> None:
    await create(tasks, OWNER.user_id)
    jobs, lists = FakePurgeJobs(), RecordingLists()
    await job_for(jobs, OWNER.user_id)
    now = tasks.clock()
    assert await jobs.claim(OWNER.user_id, "other", now, now + timedelta(minutes=1))

    finished = await purger_over(tasks, jobs, lists).purge_claimable()

    assert finished == 0
    assert len(tasks.store.tasks) == 1
