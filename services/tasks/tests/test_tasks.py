"""Tasks' rules, over fakes of the adapters: validation, rights, versions, events."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from taskmesh_chassis.errors import InvalidArgument
from taskmesh_tasks.domain import (
    AssigneeCheckUnavailable,
    NotAllowed,
    Priority,
    Status,
    Task,
    TaskNotFound,
    VersionConflict,
    Viewer,
    check_fields,
)
from taskmesh_tasks.events import (
    TASK_ASSIGNED,
    TASK_COMPLETED,
    TASK_CREATED,
    TASK_DELETED,
    TASK_UPDATED,
)

from .fakes import ADMIN, ASSIGNEE, INACTIVE_USER, OWNER, STRANGER, Harness, make_harness


@pytest.fixture
def tasks() -> Harness:
    return make_harness()


async def create(tasks: Harness, viewer: Viewer = OWNER, **values: Any) -> Task:
    values.setdefault("title", "Write the report")
    written = await tasks.service.create_task(viewer, check_fields(values))
    return written.value


async def assigned_task(tasks: Harness) -> Task:
    return await create(tasks, assignee_id=ASSIGNEE.user_id)


# --- validation ----------------------------------------------------------------------------


def test_tags_are_lowercased_and_deduplicated() -> None:
    values = check_fields({"tags": ["Work", "work ", "HOME", "home"]})
    assert values["tags"] == ("work", "home")


@pytest.mark.parametrize(
    ("values", "loc"),
    [
        ({"title": ""}, ("body", "title")),
        ({"title": "   "}, ("body", "title")),
        ({"title": "x" * 201}, ("body", "title")),
        ({"description": "x" * 10_001}, ("body", "description")),
        ({"tags": ["ok", ""]}, ("body", "tags", 1)),
        ({"tags": ["x" * 33]}, ("body", "tags", 0)),
        ({"tags": [f"t{i}" for i in range(21)]}, ("body", "tags")),
        ({"assignee_id": "not-an-id"}, ("body", "assignee_id")),
        ({"assignee_id": {"$ne": None}}, ("body", "assignee_id")),
    ],
)
def test_invalid_fields_are_named(values: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_fields(values)
    assert loc in [error.loc for error in raised.value.errors]


def test_limits_are_inclusive() -> None:
    values = check_fields(
        {"title": "x" * 200, "description": "y" * 10_000, "tags": [f"t{i}" for i in range(20)]}
    )
    assert len(values["tags"]) == 20


async def test_new_task_has_defaults_and_version_one(tasks: Harness) -> None:
    task = await create(tasks)

    assert (task.version, task.fields.status, task.fields.priority) == (
        1,
        Status.TODO,
        Priority.MEDIUM,
    )
    assert (task.owner_id, task.assignee_id, task.completed_at) == (OWNER.user_id, None, None)


async def test_inactive_assignee_is_invalid(tasks: Harness) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await create(tasks, assignee_id=INACTIVE_USER)
    assert raised.value.errors[0].loc == ("body", "assignee_id")
    assert tasks.store.tasks == {}


async def test_unknown_assignee_is_invalid(tasks: Harness) -> None:
    with pytest.raises(InvalidArgument):
        await create(tasks, assignee_id="0123456789abcdef01234567")


async def test_assignee_check_unavailable_refuses_the_write(tasks: Harness) -> None:
    tasks.users.down = True

    with pytest.raises(AssigneeCheckUnavailable) as raised:
        await create(tasks, assignee_id=ASSIGNEE.user_id)

    assert raised.value.status_code == grpc.StatusCode.UNAVAILABLE
    assert tasks.store.tasks == {}


async def test_unchanged_assignee_is_not_checked_again(tasks: Harness) -> None:
    task = await assigned_task(tasks)
    tasks.users.down = True

    written = await tasks.service.update_task(
        OWNER, task.id, check_fields({"title": "New", "assignee_id": ASSIGNEE.user_id})
    )

    assert written.value.fields.title == "New"


# --- visibility and rights -------------------------------------------------------------------


async def test_owner_assignee_and_admin_see_a_task_and_others_do_not(tasks: Harness) -> None:
    task = await assigned_task(tasks)

    for viewer in (OWNER, ASSIGNEE, ADMIN):
        assert (await tasks.service.get_task(viewer, task.id)).id == task.id
    with pytest.raises(TaskNotFound):
        await tasks.service.get_task(STRANGER, task.id)


async def test_assignee_may_change_the_status(tasks: Harness) -> None:
    task = await assigned_task(tasks)

    written = await tasks.service.update_task(ASSIGNEE, task.id, {"status": Status.IN_PROGRESS})

    assert (written.value.fields.status, written.value.version) == (Status.IN_PROGRESS, 2)


async def test_assignee_cannot_rename_task(tasks: Harness) -> None:
    task = await assigned_task(tasks)

    with pytest.raises(NotAllowed) as raised:
        await tasks.service.update_task(ASSIGNEE, task.id, {"title": "Mine now"})

    assert raised.value.status_code == grpc.StatusCode.PERMISSION_DENIED
    assert tasks.store.tasks[task.id] == task


async def test_assignee_cannot_delete_task(tasks: Harness) -> None:
    task = await assigned_task(tasks)

    with pytest.raises(NotAllowed):
        await tasks.service.delete_task(ASSIGNEE, task.id)
    assert task.id in tasks.store.tasks


async def test_stranger_gets_not_found_on_every_write(tasks: Harness) -> None:
    task = await create(tasks)
    service = tasks.service

    writes = [
        service.update_task(STRANGER, task.id, {"status": Status.DONE}),
        service.replace_task(STRANGER, task.id, check_fields({"title": "x"})),
        service.delete_task(STRANGER, task.id),
        service.list_attachments(STRANGER, task.id),
        service.delete_attachment(STRANGER, task.id, task.id),
    ]
    for write in writes:
        with pytest.raises(TaskNotFound):
            await write
    assert tasks.store.tasks[task.id] == task


async def test_admin_may_change_and_delete_any_task(tasks: Harness) -> None:
    task = await create(tasks)

    await tasks.service.update_task(ADMIN, task.id, {"title": "Renamed by admin"})
    await tasks.service.delete_task(ADMIN, task.id)

    assert tasks.store.tasks == {}


async def test_unknown_or_malformed_id_is_not_found(tasks: Harness) -> None:
    for task_id in ["65f0c0ffee0000000000aaaa", "nope", ""]:
        with pytest.raises(TaskNotFound):
            await tasks.service.get_task(OWNER, task_id)


# --- versions --------------------------------------------------------------------------------


async def test_every_change_adds_one_to_the_version(tasks: Harness) -> None:
    task = await create(tasks)

    first = await tasks.service.update_task(OWNER, task.id, {"title": "Two"})
    second = await tasks.service.update_task(OWNER, task.id, {"priority": Priority.URGENT})

    assert (first.value.version, second.value.version) == (2, 3)


async def test_stale_version_changes_nothing(tasks: Harness) -> None:
    task = await create(tasks)
    await tasks.service.update_task(OWNER, task.id, {"title": "Two"})
    before = tasks.store.tasks[task.id]

    with pytest.raises(VersionConflict) as raised:
        await tasks.service.update_task(OWNER, task.id, {"title": "Three"}, expected_version=1)

    assert raised.value.status_code == grpc.StatusCode.FAILED_PRECONDITION
    assert tasks.store.tasks[task.id] == before


async def test_matching_version_is_applied(tasks: Harness) -> None:
    task = await create(tasks)

    written = await tasks.service.update_task(OWNER, task.id, {"title": "Two"}, expected_version=1)

    assert written.value.version == 2


async def test_a_write_racing_another_with_the_expected_version_loses(tasks: Harness) -> None:
    task = await create(tasks)

    def someone_else_writes_first() -> None:
        current = tasks.store.tasks[task.id]
        tasks.store.tasks[task.id] = type(current)(**{**_as_dict(current), "version": 2})
        tasks.store.before_save = None

    tasks.store.before_save = someone_else_writes_first

    with pytest.raises(VersionConflict):
        await tasks.service.update_task(OWNER, task.id, {"title": "Mine"}, expected_version=1)


async def test_a_write_without_expected_version_is_recomputed_after_a_race(tasks: Harness) -> None:
    task = await create(tasks)

    def someone_else_writes_first() -> None:
        current = tasks.store.tasks[task.id]
        tasks.store.tasks[task.id] = type(current)(**{**_as_dict(current), "version": 2})
        tasks.store.before_save = None

    tasks.store.before_save = someone_else_writes_first

    written = await tasks.service.update_task(OWNER, task.id, {"title": "Mine"})

    assert (written.value.fields.title, written.value.version) == ("Mine", 3)


async def test_an_update_that_changes_nothing_keeps_the_version(tasks: Harness) -> None:
    task = await create(tasks)

    written = await tasks.service.update_task(OWNER, task.id, {"title": task.fields.title})

    assert written.value.version == 1
    assert written.affected_user_ids == frozenset()
    assert tasks.store.events_of(TASK_UPDATED) == []


def _as_dict(task: Task) -> dict[str, Any]:
    return {name: getattr(task, name) for name in Task.__slots__}


# --- status and completion ---------------------------------------------------------------------


async def test_completed_at_is_set_on_done_and_cleared_when_leaving_done(tasks: Harness) -> None:
    task = await create(tasks)

    done = await tasks.service.update_task(OWNER, task.id, {"status": Status.DONE})
    reopened = await tasks.service.update_task(OWNER, task.id, {"status": Status.TODO})

    assert done.value.completed_at is not None
    assert reopened.value.completed_at is None


async def test_replace_resets_fields_not_given(tasks: Harness) -> None:
    task = await create(tasks, description="Long", tags=["a"], priority=Priority.HIGH)

    written = await tasks.service.replace_task(OWNER, task.id, check_fields({"title": "Only"}))

    fields = written.value.fields
    assert (fields.title, fields.description, fields.tags, fields.priority) == (
        "Only",
        "",
        (),
        Priority.MEDIUM,
    )


# --- events and affected users -----------------------------------------------------------------


async def test_create_publishes_created_and_assigned(tasks: Harness) -> None:
    task = await assigned_task(tasks)

    [created] = tasks.store.events_of(TASK_CREATED)
    [assigned] = tasks.store.events_of(TASK_ASSIGNED)
    assert (created.task.owner_id, created.task.assignee_id) == (OWNER.user_id, ASSIGNEE.user_id)
    assert (assigned.task.id, assigned.previous_assignee_id) == (task.id, "")


async def test_update_publishes_changed_fields_and_completion(tasks: Harness) -> None:
    task = await assigned_task(tasks)

    await tasks.service.update_task(ASSIGNEE, task.id, {"status": Status.DONE})

    [updated] = tasks.store.events_of(TASK_UPDATED)
    [completed] = tasks.store.events_of(TASK_COMPLETED)
    assert list(updated.changed_fields) == ["status", "completed_at"]
    assert updated.actor_id == ASSIGNEE.user_id
    assert completed.task.assignee_id == ASSIGNEE.user_id
    assert updated.previous_assignee_id == ""


async def test_reassignment_affects_owner_and_both_assignees(tasks: Harness) -> None:
    task = await assigned_task(tasks)
    newcomer = "65f0c0ffee00000000000005"

    written = await tasks.service.update_task(OWNER, task.id, {"assignee_id": newcomer})

    assert written.affected_user_ids == {OWNER.user_id, ASSIGNEE.user_id, newcomer}
    [_, reassigned] = tasks.store.events_of(TASK_ASSIGNED)
    assert reassigned.previous_assignee_id == ASSIGNEE.user_id
    [updated] = tasks.store.events_of(TASK_UPDATED)
    assert updated.previous_assignee_id == ASSIGNEE.user_id


async def test_unassigning_publishes_no_assigned_event(tasks: Harness) -> None:
    task = await assigned_task(tasks)

    await tasks.service.update_task(OWNER, task.id, {"assignee_id": None})

    assert len(tasks.store.events_of(TASK_ASSIGNED)) == 1
    [updated] = tasks.store.events_of(TASK_UPDATED)
    assert (list(updated.changed_fields), updated.previous_assignee_id) == (
        ["assignee_id"],
        ASSIGNEE.user_id,
    )


async def test_delete_publishes_deleted_with_owner_and_assignee(tasks: Harness) -> None:
    task = await assigned_task(tasks)

    written = await tasks.service.delete_task(OWNER, task.id)

    [deleted] = tasks.store.events_of(TASK_DELETED)
    assert (deleted.task_id, deleted.owner_id, deleted.assignee_id) == (
        task.id,
        OWNER.user_id,
        ASSIGNEE.user_id,
    )
    assert written.affected_user_ids == {OWNER.user_id, ASSIGNEE.user_id}
