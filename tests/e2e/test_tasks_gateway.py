"""The gateway's part of the Tasks section, end to end: the per-user list cache, which must
never serve a user stale data (whichever of the two gateway instances answers), and
Idempotency-Key on POST. Runs on the shared suite.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from taskmesh_localrun.testing import TEST_PASSWORD, ApiUser, LocalRun, register_user

pytestmark = pytest.mark.e2e

PASSWORD = TEST_PASSWORD
TASKS = "/api/v1/tasks"


@pytest.fixture
def client(suite: LocalRun) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=suite.url, timeout=30) as http:
        yield http


@pytest.fixture
def owner(client: httpx.Client) -> ApiUser:
    return register_user(client)


@pytest.fixture
def assignee(client: httpx.Client) -> ApiUser:
    return register_user(client)


def create(client: httpx.Client, user: ApiUser, **fields: Any) -> dict[str, Any]:
    response = client.post(TASKS, json={"title": "A task", **fields}, headers=user.auth)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def first_page(client: httpx.Client, user: ApiUser, **query: Any) -> httpx.Response:
    response = client.get(TASKS, params=query, headers=user.auth)
    assert response.status_code == 200, response.text
    return response


def titles(response: httpx.Response) -> list[str]:
    return [task["title"] for task in response.json()["items"]]


# --- the list cache ----------------------------------------------------------------------------


def test_a_list_is_a_miss_then_a_hit(client: httpx.Client, owner: ApiUser) -> None:
    create(client, owner)

    first = first_page(client, owner, sort="due_at")
    second = first_page(client, owner, sort="due_at")

    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.json() == first.json()


def test_the_cache_is_per_user(client: httpx.Client, owner: ApiUser, assignee: ApiUser) -> None:
    create(client, owner, title="owner only")
    first_page(client, owner)

    response = first_page(client, assignee)

    assert (response.headers["x-cache"], titles(response)) == ("MISS", [])


def test_own_writes_are_seen_at_once(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner, title="v0")
    url = f"{TASKS}/{task['id']}"
    for version in range(1, 8):
        first_page(client, owner)
        first_page(client, owner)  # now cached, on one gateway or the other

        client.patch(url, json={"title": f"v{version}"}, headers=owner.auth)

        assert titles(first_page(client, owner)) == [f"v{version}"]


def test_creates_and_deletes_are_seen_at_once(client: httpx.Client, owner: ApiUser) -> None:
    first_page(client, owner)
    task = create(client, owner, title="fresh")
    assert titles(first_page(client, owner)) == ["fresh"]

    client.delete(f"{TASKS}/{task['id']}", headers=owner.auth)

    assert titles(first_page(client, owner)) == []


def test_the_owners_write_refreshes_the_assignees_list(
    client: httpx.Client, owner: ApiUser, assignee: ApiUser
) -> None:
    task = create(client, owner, title="before", assignee_id=assignee.id)
    first_page(client, assignee)
    assert first_page(client, assignee).headers["x-cache"] == "HIT"

    client.patch(f"{TASKS}/{task['id']}", json={"title": "after"}, headers=owner.auth)

    assert titles(first_page(client, assignee)) == ["after"]


def test_the_assignees_write_refreshes_the_owners_list(
    client: httpx.Client, owner: ApiUser, assignee: ApiUser
) -> None:
    task = create(client, owner, assignee_id=assignee.id)
    first_page(client, owner)
    first_page(client, owner)

    client.patch(f"{TASKS}/{task['id']}", json={"status": "done"}, headers=assignee.auth)

    assert [t["status"] for t in first_page(client, owner).json()["items"]] == ["done"]


def test_unassigning_refreshes_the_former_assignees_list(
    client: httpx.Client, owner: ApiUser, assignee: ApiUser
) -> None:
    task = create(client, owner, assignee_id=assignee.id)
    first_page(client, assignee)
    first_page(client, assignee)

    client.patch(f"{TASKS}/{task['id']}", json={"assignee_id": None}, headers=owner.auth)

    assert titles(first_page(client, assignee)) == []


def test_an_attachment_write_refreshes_the_list(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)
    first_page(client, owner)
    first_page(client, owner)

    client.post(
        f"{TASKS}/{task['id']}/attachments",
        files={"file": ("a.txt", b"a", "text/plain")},
        headers=owner.auth,
    )

    assert first_page(client, owner).headers["x-cache"] == "MISS"


# --- Idempotency-Key ---------------------------------------------------------------------------


def test_a_repeated_post_replays_the_first_answer_and_creates_once(
    client: httpx.Client, owner: ApiUser
) -> None:
    headers = {**owner.auth, "Idempotency-Key": str(uuid.uuid4())}

    first = client.post(TASKS, json={"title": "once"}, headers=headers)
    second = client.post(TASKS, json={"title": "once"}, headers=headers)

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["idempotent-replayed"] == "true"
    assert titles(first_page(client, owner)) == ["once"]


def test_concurrent_duplicates_create_once(client: httpx.Client, owner: ApiUser) -> None:
    headers = {**owner.auth, "Idempotency-Key": str(uuid.uuid4())}

    def post(_: int) -> httpx.Response:
        return client.post(TASKS, json={"title": "race"}, headers=headers)

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(post, range(6)))

    created = [r for r in responses if r.status_code == 201]
    assert {r.status_code for r in responses} <= {201, 409}
    assert len({r.content for r in created}) == 1
    assert titles(first_page(client, owner)) == ["race"]


def test_the_same_key_with_another_body_is_422(client: httpx.Client, owner: ApiUser) -> None:
    headers = {**owner.auth, "Idempotency-Key": str(uuid.uuid4())}
    client.post(TASKS, json={"title": "one"}, headers=headers)

    response = client.post(TASKS, json={"title": "two"}, headers=headers)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert titles(first_page(client, owner)) == ["one"]


def test_the_same_key_from_another_user_is_their_own(
    client: httpx.Client, owner: ApiUser, assignee: ApiUser
) -> None:
    key = str(uuid.uuid4())

    mine = client.post(TASKS, json={"title": "t"}, headers={**owner.auth, "Idempotency-Key": key})
    theirs = client.post(
        TASKS, json={"title": "t"}, headers={**assignee.auth, "Idempotency-Key": key}
    )

    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]


def test_a_replayed_upload_stores_the_file_once(client: httpx.Client, owner: ApiUser) -> None:
    task = create(client, owner)
    url = f"{TASKS}/{task['id']}/attachments"
    headers = {**owner.auth, "Idempotency-Key": str(uuid.uuid4())}
    files = {"file": ("a.txt", b"hello", "text/plain")}

    first = client.post(url, files=files, headers=headers)
    second = client.post(url, files=files, headers=headers)

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert len(client.get(url, headers=owner.auth).json()) == 1


def test_a_repeated_register_replays_instead_of_conflicting(client: httpx.Client) -> None:
    body = {"email": f"e2e-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD, "name": "A"}
    headers = {"Idempotency-Key": str(uuid.uuid4())}

    first = client.post("/api/v1/auth/register", json=body, headers=headers)
    second = client.post("/api/v1/auth/register", json=body, headers=headers)

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()


def test_a_malformed_key_is_400(client: httpx.Client, owner: ApiUser) -> None:
    response = client.post(
        TASKS, json={"title": "x"}, headers={**owner.auth, "Idempotency-Key": "k" * 256}
    )

    assert response.status_code == 400
