"""Task lists over fakes: scope, filters, the cursor and its validation."""

from __future__ import annotations

from typing import Any

import pytest
from taskmesh_chassis.errors import InvalidArgument
from taskmesh_tasks.domain import NotAllowed, Status, Task, Viewer, check_fields
from taskmesh_tasks.listing import (
    Position,
    Scope,
    SortOrder,
    TaskFilter,
    decode_cursor,
    encode_cursor,
)

from .fakes import ADMIN, ASSIGNEE, OWNER, STRANGER, Harness, make_harness


@pytest.fixture
def tasks() -> Harness:
    return make_harness()


async def create(tasks: Harness, viewer: Viewer = OWNER, **values: Any) -> Task:
    values.setdefault("title", "A task")
    return (await tasks.service.create_task(viewer, check_fields(values))).value


async def walk(tasks: Harness, viewer: Viewer, **options: Any) -> list[str]:
    seen: list[str] = []
    cursor = ""
    while True:
        page = await tasks.service.list_tasks(viewer, cursor=cursor, **options)
        seen.extend(task.id for task in page.tasks)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


async def test_default_scope_is_owned_or_assigned(tasks: Harness) -> None:
    owned = await create(tasks)
    assigned = await create(tasks, STRANGER, assignee_id=OWNER.user_id)
    await create(tasks, STRANGER)

    page = await tasks.service.list_tasks(OWNER)

    assert [task.id for task in page.tasks] == [assigned.id, owned.id]


async def test_scopes_select_owned_or_assigned(tasks: Harness) -> None:
    owned = await create(tasks)
    assigned = await create(tasks, STRANGER, assignee_id=OWNER.user_id)

    only_owned = await tasks.service.list_tasks(OWNER, scope=Scope.OWNED)
    only_assigned = await tasks.service.list_tasks(OWNER, scope=Scope.ASSIGNED)

    assert [task.id for task in only_owned.tasks] == [owned.id]
    assert [task.id for task in only_assigned.tasks] == [assigned.id]


async def test_owner_filter_is_for_admins_only(tasks: Harness) -> None:
    theirs = await create(tasks, STRANGER)

    with pytest.raises(NotAllowed):
        await tasks.service.list_tasks(OWNER, task_filter=TaskFilter(owner_id=STRANGER.user_id))
    page = await tasks.service.list_tasks(ADMIN, task_filter=TaskFilter(owner_id=STRANGER.user_id))

    assert [task.id for task in page.tasks] == [theirs.id]


async def test_assignee_filter_stays_within_the_callers_tasks(tasks: Harness) -> None:
    await create(tasks, STRANGER, assignee_id=ASSIGNEE.user_id)
    mine = await create(tasks, assignee_id=ASSIGNEE.user_id)

    page = await tasks.service.list_tasks(
        OWNER, task_filter=TaskFilter(assignee_id=ASSIGNEE.user_id)
    )

    assert [task.id for task in page.tasks] == [mine.id]


async def test_a_task_owned_and_assigned_to_the_caller_is_listed_once(tasks: Harness) -> None:
    task = await create(tasks, assignee_id=OWNER.user_id)

    assert await walk(tasks, OWNER, limit=1) == [task.id]


async def test_filters_combine(tasks: Harness) -> None:
    match = await create(tasks, title="Buy MILK", tags=["home", "shop"], status=Status.DONE)
    await create(tasks, title="Buy milk", tags=["home"], status=Status.DONE)
    await create(tasks, title="Buy bread", tags=["home", "shop"], status=Status.DONE)

    page = await tasks.service.list_tasks(
        OWNER, task_filter=TaskFilter(status=Status.DONE, tags=("Shop", "home"), text="milk")
    )

    assert [task.id for task in page.tasks] == [match.id]


async def test_cursor_walk_with_inserts_sees_every_task_once(tasks: Harness) -> None:
    originals = [(await create(tasks, title=f"t{i}")).id for i in range(7)]
    seen: list[str] = []
    page = await tasks.service.list_tasks(OWNER, limit=3, sort=SortOrder.CREATED_AT_ASC)
    seen.extend(task.id for task in page.tasks)
    while page.next_cursor:
        await create(tasks, title="inserted midway")
        page = await tasks.service.list_tasks(
            OWNER, limit=3, sort=SortOrder.CREATED_AT_ASC, cursor=page.next_cursor
        )
        seen.extend(task.id for task in page.tasks)

    assert [task_id for task_id in seen if task_id in originals] == originals
    assert len(seen) == len(set(seen))


def test_cursor_round_trips() -> None:
    position = Position(3, "65f0c0ffee0000000000aaaa")
    cursor = encode_cursor(SortOrder.PRIORITY_DESC, position)

    assert decode_cursor(cursor, SortOrder.PRIORITY_DESC) == position


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        "e30",  # {}
        encode_cursor(SortOrder.PRIORITY_DESC, Position(3, "65f0c0ffee0000000000aaaa")),
        encode_cursor(SortOrder.CREATED_AT_DESC, Position(3, "65f0c0ffee0000000000aaaa")),
        "x" * 600,
    ],
)
def test_malformed_or_foreign_cursor_is_invalid(cursor: str) -> None:
    with pytest.raises(InvalidArgument):
        decode_cursor(cursor, SortOrder.CREATED_AT_DESC)


@pytest.mark.parametrize("limit", [-1, 101])
async def test_limit_outside_1_to_100_is_invalid(tasks: Harness, limit: int) -> None:
    with pytest.raises(InvalidArgument):
        await tasks.service.list_tasks(OWNER, limit=limit)


async def test_stranger_lists_nothing_of_others(tasks: Harness) -> None:
    await create(tasks, assignee_id=ASSIGNEE.user_id)

    page = await tasks.service.list_tasks(STRANGER)

    assert page.tasks == []
