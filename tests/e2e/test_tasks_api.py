"""Every row and rule of API.md's Tasks section, through Traefik, against the whole suite.

The suite of this module starts with a bootstrap admin (admins see and edit every task) and
rate limits lifted (they have tests of their own). Each test registers fresh users.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from taskmesh_localrun.testing import ApiUser, LocalRun, register_user

from .conftest import SHARED_SUITE_RATE_LIMITS, StartSuite

pytestmark = pytest.mark.e2e

ADMIN_EMAIL = "e2e-tasks-admin@example.com"
ADMIN_PASSWORD = "e2e tasks admin password, long enough"
PROBLEM_JSON = "application/problem+json"
TASKS = "/api/v1/tasks"
MISSING_ID = "65f0c0ffee0000000000aaaa"
TASK_FIELDS = {
    "id",
    "owner_id",
    "assignee_id",
    "title",
    "description",
    "status",
    "priority",
    "due_at",
    "tags",
    "created_at",
    "updated_at",
    "completed_at",
    "version",
}


@pytest.fixture(scope="module")
def tasks_suite(start_suite: StartSuite) -> Iterator[LocalRun]:
    run = start_suite(
        MONGODB_DATABASE_PREFIX=f"e2e_tasks_{secrets.token_hex(4)}_",
        BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        **SHARED_SUITE_RATE_LIMITS,
    )
    run.wait_until_readyz()
    yield run
    run.close()


@pytest.fixture
def client(tasks_suite: LocalRun) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tasks_suite.url, timeout=30) as http:
        yield http


@pytest.fixture
def owner(client: httpx.Client) -> ApiUser:
    return register_user(client)


@pytest.fixture
def other(client: httpx.Client) -> ApiUser:
    return register_user(client)


@pytest.fixture
def assignee(client: httpx.Client) -> ApiUser:
    return register_user(client)


@pytest.fixture
def admin(client: httpx.Client) -> ApiUser:
    response = client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    me = client.get("/api/v1/auth/me", headers=bearer(response.json()["access_token"]))
    return ApiUser(me.json()["id"], response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(client: httpx.Client, user: ApiUser, **fields: Any) -> dict[str, Any]:
    response = client.post(TASKS, json={"title": "A task", **fields}, headers=user.auth)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def list_all(client: httpx.Client, user: ApiUser, **query: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, "limit": 100, **({"cursor": cursor} if cursor else {})}
        response = client.get(TASKS, params=params, headers=user.auth)
        assert response.status_code == 200, response.text
        items.extend(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


def ids(tasks: list[dict[str, Any]]) -> list[str]:
    return [task["id"] for task in tasks]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- create, read --------------------------------------------------------------------------


def test_create_answers_201_with_the_task_its_location_and_defaults(
    client: httpx.Client, owner: ApiUser
) -> None:
    response = client.post(TASKS, json={"title": "  Write the report  "}, headers=owner.auth)

    assert response.status_code == 201, response.text
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert response.headers["location"].endswith(f"{TASKS}/{task['id']}")
    assert (task["owner_id"], task["assignee_id"]) == (owner.id, None)
    assert (task["title"], task["description"]) == ("Write the report", "")
    assert (task["status"], task["priority"], task["tags"]) == ("todo", "medium", [])
    assert (task["due_at"], task["completed_at"], task["version"]) == (None, None, 1)
    assert task["created_at"].endswith("Z")
    assert task["created_at"] == task["updated_at"]


def test_create_with_every_field(client: httpx.Client, owner: ApiUser, assignee: ApiUser) -> None:
    task = create(
        client,
        owner,
        title="Plan",
        description="Details",
        status="in_progress",
        priority="urgent",
        due_at="2030-12-01T10:00:00+01:00",
        tags=["Work", "work", "Q4"],
        assignee_id=assignee.id,
    )

    assert (task["status"], task["priority"]) == ("in_progress", "urgent")
    assert task["due_at"] == "2030-12-01T09:00:00.000Z"
    assert sorted(task["tags"]) == ["q4", "work"]
    assert task["assignee_id"] == assignee.id


def test_created_task_reads_back_with_its_version_as_etag(
    client: httpx.Client, owner: ApiUser
) -> None:
    created = client.post(TASKS, json={"title": "Read me"}, headers=owner.auth)

    response = client.get(created.headers["location"], headers=owner.auth)

    assert response.status_code == 200
    assert response.json() == created.json()
    assert response.headers["etag"] == '"1"'


def test_a_current_copy_is_304_and_a_stale_one_gets_the_new_version(
    client: httpx.Client, owner: ApiUser, other: ApiUser
) -> None:
    location = client.post(TASKS, json={"title": "Cache me"}, headers=owner.auth).headers[
        "location"
    ]
    current = {**owner.auth, "If-None-Match": '"1"'}

    unchanged = client.get(location, headers=current)
    client.patch(location, json={"title": "Changed"}, headers=owner.auth)
    changed = client.get(location, headers=current)
    hidden = client.get(location, headers={**other.auth, "If-None-Match": "*"})

    assert (unchanged.status_code, unchanged.headers["etag"], unchanged.content) == (
        304,
        '"1"',
        b"",
    )
    assert (changed.status_code, changed.headers["etag"]) == (200, '"2"')
    assert changed.json()["title"] == "Changed"
    assert_problem(hidden, 404)


@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "x" * 201},
        {"title": "x", "description": "x" * 10_001},
        {"title": "x", "tags": [f"t{i}" for i in range(21)]},
        {"title": "x", "tags": ["x" * 33]},
        {"title": "x", "status": "blocked"},
        {"title": "x", "priority": "critical"},
        {"title": "x", "due_at": "next tuesday"},
        {"title": "x", "colour": "red"},
        {"title": {"$gt": ""}},
        {"title": "x", "assignee_id": MISSING_ID},
        {"title": "x", "assignee_id": {"$ne": None}},
    ],
    ids=[
        "empty-title",
        "long-title",
        "long-description",
        "21-tags",
        "long-tag",
        "status",
        "priority",
        "due-at",
        "unknown-field",
        "operator-title",
        "unknown-assignee",
        "operator-assignee",
    ],
)
def test_create_with_invalid_input_is_422(
    client: httpx.Client, owner: ApiUser, body: dict[str, Any]
) -> None:
    assert_problem(client.post(TASKS, json=body, headers=owner.auth), 422)


def test_create_with_malformed_json_is_400(client: httpx.Client, owner: ApiUser) -> None:
    response = client.post(
        TASKS, content=b'{"title": ', headers={**owner.auth, "Content-Type": "application/json"}
    )

    assert_problem(response, 400)


def test_create_with_another_content_type_is_415(client: httpx.Client, owner: ApiUser) -> None:
    response = client.post(
        TASKS, content=b"title=x", headers={**owner.auth, "Content-Type": "text/plain"}
    )

    assert_problem(response, 415)


def test_tasks_without_a_token_are_401(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)

    for response in (
        client.get(TASKS),
        client.post(TASKS, json={"title": "x"}),
        client.get(f"{TASKS}/{task['id']}"),
        client.delete(f"{TASKS}/{task['id']}"),
    ):
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_an_unknown_task_is_404(client: httpx.Client, owner: ApiUser) -> None:
    assert_problem(client.get(f"{TASKS}/{MISSING_ID}", headers=owner.auth), 404)


def test_a_malformed_task_id_is_404(client: httpx.Client, owner: ApiUser) -> None:
    assert_problem(client.get(f"{TASKS}/not-an-id", headers=owner.auth), 404)


# --- patch, put, delete ----------------------------------------------------------------------


def test_patch_changes_only_the_given_fields_and_bumps_the_version(
    client: httpx.Client, owner: ApiUser
) -> None:
    task = create(client, owner, description="keep me", tags=["a"])

    response = client.patch(
        f"{TASKS}/{task['id']}", json={"title": "Renamed", "priority": "high"}, headers=owner.auth
    )

    assert response.status_code == 200, response.text
    patched = response.json()
    assert (patched["title"], patched["priority"]) == ("Renamed", "high")
    assert (patched["description"], patched["tags"]) == ("keep me", ["a"])
    assert patched["version"] == 2
    assert response.headers["etag"] == '"2"'
    assert patched["updated_at"] >= task["updated_at"]
    assert patched["created_at"] == task["created_at"]


def test_patch_null_clears_due_at_and_assignee(
    client: httpx.Client, owner: ApiUser, assignee: ApiUser
) -> None:
    task = create(client, owner, due_at="2030-01-01T00:00:00Z", assignee_id=assignee.id)

    patched = client.patch(
        f"{TASKS}/{task['id']}", json={"due_at": None, "assignee_id": None}, headers=owner.auth
    ).json()

    assert (patched["due_at"], patched["assignee_id"]) == (None, None)


def test_completed_at_is_set_on_done_and_cleared_when_leaving_it(
    client: httpx.Client, owner: ApiUser
) -> None:
    task = create(client, owner)
    url = f"{TASKS}/{task['id']}"

    done = client.patch(url, json={"status": "done"}, headers=owner.auth).json()
    reopened = client.patch(url, json={"status": "in_progress"}, headers=owner.auth).json()

    assert done["completed_at"] is not None
    assert done["completed_at"].endswith("Z")
    assert reopened["completed_at"] is None


def test_put_replaces_every_writable_field(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner, description="old", priority="high", tags=["x"])

    response = client.put(f"{TASKS}/{task['id']}", json={"title": "Fresh"}, headers=owner.auth)

    assert response.status_code == 200, response.text
    replaced = response.json()
    assert (replaced["title"], replaced["description"], replaced["priority"]) == (
        "Fresh",
        "",
        "medium",
    )
    assert (replaced["tags"], replaced["version"]) == ([], 2)
    assert response.headers["etag"] == '"2"'


def test_put_without_a_title_is_422(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)

    assert_problem(client.put(f"{TASKS}/{task['id']}", json={}, headers=owner.auth), 422)


def test_delete_is_204_and_the_task_is_gone(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)

    response = client.delete(f"{TASKS}/{task['id']}", headers=owner.auth)

    assert response.status_code == 204
    assert response.content == b""
    assert_problem(client.get(f"{TASKS}/{task['id']}", headers=owner.auth), 404)
    assert task["id"] not in ids(list_all(client, owner))


# --- If-Match ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.Client, owner: ApiUser, method: str
) -> None:
    task = create(client, owner)
    url = f"{TASKS}/{task['id']}"
    client.patch(url, json={"title": "v2"}, headers=owner.auth)

    response = client.request(
        method, url, json={"title": "lost update"}, headers={**owner.auth, "If-Match": '"1"'}
    )

    assert_problem(response, 412)
    current = client.get(url, headers=owner.auth)
    assert (current.json()["title"], current.headers["etag"]) == ("v2", '"2"')


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_the_current_if_match_is_accepted(
    client: httpx.Client, owner: ApiUser, method: str
) -> None:
    task = create(client, owner)
    url = f"{TASKS}/{task['id']}"
    etag = client.get(url, headers=owner.auth).headers["etag"]

    response = client.request(
        method, url, json={"title": "checked"}, headers={**owner.auth, "If-Match": etag}
    )

    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'


def test_two_writers_of_the_same_version_one_wins(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)
    url = f"{TASKS}/{task['id']}"
    stale = {**owner.auth, "If-Match": '"1"'}

    first = client.patch(url, json={"title": "first"}, headers=stale)
    second = client.patch(url, json={"title": "second"}, headers=stale)

    assert (first.status_code, second.status_code) == (200, 412)


# --- visibility: BOLA ----------------------------------------------------------------------------


def test_another_users_task_is_404_on_every_verb(
    client: httpx.Client, owner: ApiUser, other: ApiUser
) -> None:
    task = create(client, owner, title="private")
    url = f"{TASKS}/{task['id']}"
    attachment = client.post(
        f"{url}/attachments", files={"file": ("a.txt", b"a", "text/plain")}, headers=owner.auth
    ).json()
    attachment_url = f"{url}/attachments/{attachment['id']}"

    answers = {
        "GET": client.get(url, headers=other.auth),
        "PATCH": client.patch(url, json={"title": "mine"}, headers=other.auth),
        "PATCH status": client.patch(url, json={"status": "done"}, headers=other.auth),
        "PUT": client.put(url, json={"title": "mine"}, headers=other.auth),
        "DELETE": client.delete(url, headers=other.auth),
        "POST attachment": client.post(
            f"{url}/attachments", files={"file": ("b.txt", b"b", "text/plain")}, headers=other.auth
        ),
        "GET attachments": client.get(f"{url}/attachments", headers=other.auth),
        "GET attachment": client.get(attachment_url, headers=other.auth),
        "DELETE attachment": client.delete(attachment_url, headers=other.auth),
    }

    assert {verb: response.status_code for verb, response in answers.items()} == {
        verb: 404 for verb in answers
    }
    assert task["id"] not in ids(list_all(client, other))
    unchanged = client.get(url, headers=owner.auth).json()
    assert (unchanged["title"], unchanged["version"]) == ("private", 1)


def test_a_foreign_404_looks_like_a_missing_404(
    client: httpx.Client, owner: ApiUser, other: ApiUser
) -> None:
    task = create(client, owner)

    foreign = client.get(f"{TASKS}/{task['id']}", headers=other.auth).json()
    missing = client.get(f"{TASKS}/{MISSING_ID}", headers=other.auth).json()

    assert foreign["detail"] == missing["detail"]


def test_a_non_admin_cannot_list_another_owners_tasks(
    client: httpx.Client, owner: ApiUser, other: ApiUser
) -> None:
    task = create(client, owner)

    response = client.get(TASKS, params={"owner_id": owner.id}, headers=other.auth)

    assert_problem(response, 403)
    assert task["id"] not in response.text


# --- the assignee ----------------------------------------------------------------------------


def test_the_assignee_sees_the_task(
    client: httpx.Client, owner: ApiUser, assignee: ApiUser
) -> None:
    task = create(client, owner, assignee_id=assignee.id)

    assert client.get(f"{TASKS}/{task['id']}", headers=assignee.auth).status_code == 200
    assert task["id"] in ids(list_all(client, assignee))
    assert task["id"] in ids(list_all(client, assignee, scope="assigned"))
    assert task["id"] not in ids(list_all(client, assignee, scope="owned"))


def test_the_assignee_may_change_the_status(
    client: httpx.Client, owner: ApiUser, assignee: ApiUser
) -> None:
    task = create(client, owner, assignee_id=assignee.id)

    response = client.patch(f"{TASKS}/{task['id']}", json={"status": "done"}, headers=assignee.auth)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "done"
    assert response.json()["completed_at"] is not None


@pytest.mark.parametrize(
    "change",
    [
        {"title": "taken over"},
        {"status": "done", "priority": "low"},
        {"assignee_id": None},
        {"tags": ["mine"]},
    ],
    ids=["title", "status-and-more", "unassign", "tags"],
)
def test_the_assignee_may_change_nothing_else(
    client: httpx.Client, owner: ApiUser, assignee: ApiUser, change: dict[str, Any]
) -> None:
    task = create(client, owner, assignee_id=assignee.id)

    response = client.patch(f"{TASKS}/{task['id']}", json=change, headers=assignee.auth)

    assert_problem(response, 403)
    assert client.get(f"{TASKS}/{task['id']}", headers=owner.auth).json()["version"] == 1


def test_the_assignee_may_not_replace_or_delete(
    client: httpx.Client, owner: ApiUser, assignee: ApiUser
) -> None:
    task = create(client, owner, assignee_id=assignee.id)
    url = f"{TASKS}/{task['id']}"
    attachment = client.post(
        f"{url}/attachments", files={"file": ("a.txt", b"a", "text/plain")}, headers=owner.auth
    ).json()

    assert_problem(client.put(url, json={"title": "x"}, headers=assignee.auth), 403)
    assert_problem(client.delete(url, headers=assignee.auth), 403)
    assert_problem(
        client.delete(f"{url}/attachments/{attachment['id']}", headers=assignee.auth), 403
    )
    assert client.get(url, headers=owner.auth).status_code == 200


def test_an_unassigned_user_loses_sight_of_the_task(
    client: httpx.Client, owner: ApiUser, assignee: ApiUser
) -> None:
    task = create(client, owner, assignee_id=assignee.id)

    client.patch(f"{TASKS}/{task['id']}", json={"assignee_id": None}, headers=owner.auth)

    assert_problem(client.get(f"{TASKS}/{task['id']}", headers=assignee.auth), 404)
    assert task["id"] not in ids(list_all(client, assignee))


# --- admins ------------------------------------------------------------------------------------


def test_an_admin_sees_edits_and_deletes_any_task(
    client: httpx.Client, owner: ApiUser, admin: ApiUser
) -> None:
    task = create(client, owner)
    url = f"{TASKS}/{task['id']}"

    assert client.get(url, headers=admin.auth).status_code == 200
    edited = client.patch(url, json={"title": "moderated"}, headers=admin.auth)
    assert (edited.status_code, edited.json()["title"]) == (200, "moderated")
    assert client.delete(url, headers=admin.auth).status_code == 204
    assert_problem(client.get(url, headers=owner.auth), 404)


def test_an_admin_lists_by_owner(client: httpx.Client, owner: ApiUser, admin: ApiUser) -> None:
    task = create(client, owner)

    assert ids(list_all(client, admin, owner_id=owner.id)) == [task["id"]]


# --- listing -----------------------------------------------------------------------------------


def test_list_is_newest_first_by_default(client: httpx.Client, owner: ApiUser) -> None:
    created = [create(client, owner, title=f"t{i}")["id"] for i in range(3)]

    response = client.get(TASKS, headers=owner.auth)

    assert response.status_code == 200
    assert set(response.json()) == {"items", "next_cursor"}
    assert ids(response.json()["items"]) == created[::-1]


def test_list_filters(client: httpx.Client, owner: ApiUser, assignee: ApiUser) -> None:
    soon = datetime.now(UTC) + timedelta(days=1)
    later = datetime.now(UTC) + timedelta(days=10)
    a = create(
        client, owner, title="Alpha report", status="done", tags=["x", "y"], due_at=rfc3339(soon)
    )
    b = create(client, owner, title="Beta", description="the REPORT", priority="high", tags=["x"])
    c = create(client, owner, title="Gamma", assignee_id=assignee.id, due_at=rfc3339(later))

    def listed(**query: Any) -> set[str]:
        return set(ids(list_all(client, owner, **query)))

    assert listed(status="done") == {a["id"]}
    assert listed(priority="high") == {b["id"]}
    assert listed(tag=["x"]) == {a["id"], b["id"]}
    assert listed(tag=["x", "y"]) == {a["id"]}
    assert listed(q="report") == {a["id"], b["id"]}
    assert listed(assignee_id=assignee.id) == {c["id"]}
    assert listed(due_before=rfc3339(soon + timedelta(days=2))) == {a["id"]}
    assert listed(due_after=rfc3339(soon + timedelta(days=2))) == {c["id"]}
    assert listed(scope="owned") == {a["id"], b["id"], c["id"]}
    assert listed(scope="assigned") == set()


def test_q_is_a_literal_substring_not_a_pattern(client: httpx.Client, owner: ApiUser) -> None:
    create(client, owner, title="plain")

    assert list_all(client, owner, q=".*") == []
    assert list_all(client, owner, q="(") == []


@pytest.mark.parametrize(
    "sort",
    ["-created_at", "created_at", "due_at", "-due_at", "-priority", "priority", "-updated_at"],
)
def test_list_sorts(client: httpx.Client, owner: ApiUser, sort: str) -> None:
    base = datetime.now(UTC)
    for index, priority in enumerate(["low", "urgent", "medium"]):
        create(client, owner, priority=priority, due_at=rfc3339(base + timedelta(days=3 - index)))

    tasks = list_all(client, owner, sort=sort)

    key = sort.lstrip("-")
    rank = {"low": 1, "medium": 2, "high": 3, "urgent": 4}
    values = [rank[task[key]] if key == "priority" else task[key] for task in tasks]
    assert values == sorted(values, reverse=sort.startswith("-"))


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "status=blocked", "priority=critical", "sort=title", "scope=x"],
)
def test_list_rejects_values_outside_their_set(
    client: httpx.Client, owner: ApiUser, query: str
) -> None:
    assert_problem(client.get(f"{TASKS}?{query}", headers=owner.auth), 422)


def test_list_ignores_unknown_parameters(client: httpx.Client, owner: ApiUser) -> None:
    assert client.get(f"{TASKS}?colour=red", headers=owner.auth).status_code == 200


@pytest.mark.parametrize("sort", ["-created_at", "due_at", "-priority"])
def test_a_cursor_walk_with_inserts_midway_sees_every_task_once(
    client: httpx.Client, owner: ApiUser, sort: str
) -> None:
    base = datetime.now(UTC)
    priorities = ["low", "medium", "high", "urgent"]
    existing = {
        create(
            client,
            owner,
            title=f"t{i}",
            priority=priorities[i % 4],
            due_at=rfc3339(base + timedelta(hours=i % 5)),
        )["id"]
        for i in range(25)
    }
    seen: list[str] = []
    cursor = None
    inserted = False
    while True:
        params = {"limit": 7, "sort": sort, **({"cursor": cursor} if cursor else {})}
        page = client.get(TASKS, params=params, headers=owner.auth).json()
        seen.extend(ids(page["items"]))
        if not inserted:
            for i in range(5):
                create(
                    client,
                    owner,
                    title=f"new{i}",
                    priority=priorities[i % 4],
                    due_at=rfc3339(base + timedelta(hours=i)),
                )
            inserted = True
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen))
    assert existing <= set(seen)


def test_a_cursor_stays_valid_when_tasks_are_deleted(client: httpx.Client, owner: ApiUser) -> None:
    created = [create(client, owner, title=f"t{i}")["id"] for i in range(10)]
    first = client.get(TASKS, params={"limit": 4}, headers=owner.auth).json()
    for task_id in created[:3]:
        client.delete(f"{TASKS}/{task_id}", headers=owner.auth)

    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(TASKS, params={"limit": 4, "cursor": cursor}, headers=owner.auth).json()
        rest.extend(ids(page["items"]))
        cursor = page["next_cursor"]

    assert ids(first["items"]) + rest == created[:2:-1]


def test_a_garbage_cursor_is_422(client: httpx.Client, owner: ApiUser) -> None:
    response = client.get(TASKS, params={"cursor": "not-a-cursor"}, headers=owner.auth)

    assert_problem(response, 422)


# --- attachments -------------------------------------------------------------------------------


def test_attachment_round_trip(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)
    url = f"{TASKS}/{task['id']}/attachments"
    content = secrets.token_bytes(300_000)

    uploaded = client.post(
        url,
        files={"file": ("r\u00e9sum\u00e9.pdf", content, "application/pdf")},
        headers=owner.auth,
    )

    assert uploaded.status_code == 201, uploaded.text
    meta = uploaded.json()
    assert set(meta) == {"id", "filename", "content_type", "size", "sha256", "created_at"}
    assert (meta["filename"], meta["content_type"]) == ("r\u00e9sum\u00e9.pdf", "application/pdf")
    assert meta["size"] == len(content)
    assert meta["sha256"] == hashlib.sha256(content).hexdigest()
    assert ids(client.get(url, headers=owner.auth).json()) == [meta["id"]]

    download = client.get(f"{url}/{meta['id']}", headers=owner.auth)

    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == meta["sha256"]
    assert download.headers["content-type"].startswith("application/pdf")
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in disposition
    assert download.headers["x-content-type-options"] == "nosniff"


def test_the_assignee_can_download(client: httpx.Client, owner: ApiUser, assignee: ApiUser) -> None:
    task = create(client, owner, assignee_id=assignee.id)
    url = f"{TASKS}/{task['id']}/attachments"
    meta = client.post(
        url, files={"file": ("a.txt", b"hello", "text/plain")}, headers=owner.auth
    ).json()

    assert client.get(f"{url}/{meta['id']}", headers=assignee.auth).content == b"hello"


def test_deleting_an_attachment(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)
    url = f"{TASKS}/{task['id']}/attachments"
    meta = client.post(
        url, files={"file": ("a.txt", b"a", "text/plain")}, headers=owner.auth
    ).json()

    assert client.delete(f"{url}/{meta['id']}", headers=owner.auth).status_code == 204
    assert_problem(client.get(f"{url}/{meta['id']}", headers=owner.auth), 404)
    assert client.get(url, headers=owner.auth).json() == []


def test_deleting_a_task_deletes_its_attachments(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)
    url = f"{TASKS}/{task['id']}/attachments"
    meta = client.post(
        url, files={"file": ("a.txt", b"a", "text/plain")}, headers=owner.auth
    ).json()

    client.delete(f"{TASKS}/{task['id']}", headers=owner.auth)

    assert_problem(client.get(f"{url}/{meta['id']}", headers=owner.auth), 404)


def test_an_upload_of_10_mib_and_one_byte_is_413(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)

    response = client.post(
        f"{TASKS}/{task['id']}/attachments",
        files={"file": ("big.bin", b"\0" * (10 * 1024 * 1024 + 1), "application/octet-stream")},
        headers=owner.auth,
    )

    assert_problem(response, 413)
    assert client.get(f"{TASKS}/{task['id']}/attachments", headers=owner.auth).json() == []


def test_an_upload_of_exactly_10_mib_is_accepted(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)
    content = b"\1" * (10 * 1024 * 1024)

    response = client.post(
        f"{TASKS}/{task['id']}/attachments",
        files={"file": ("max.bin", content, "application/octet-stream")},
        headers=owner.auth,
    )

    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(content).hexdigest()


def test_an_upload_that_is_not_multipart_is_415(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)

    response = client.post(
        f"{TASKS}/{task['id']}/attachments",
        content=b"raw",
        headers={**owner.auth, "Content-Type": "application/octet-stream"},
    )

    assert_problem(response, 415)


def test_an_upload_without_a_file_part_is_422(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)

    response = client.post(
        f"{TASKS}/{task['id']}/attachments",
        files={"document": ("a.txt", b"a", "text/plain")},
        headers=owner.auth,
    )

    assert_problem(response, 422)
