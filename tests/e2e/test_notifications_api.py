"""API.md's Notifications section and its email, end to end, through Traefik.

The suite of this module runs two instances of the notifications service (`--instances
notifications=2`: both consume the service's event queues and both run the reminder
scheduler, against one database) with a reminder scan every second, rate limits lifted and
an events exchange of its own. Emails land in the run's mail catcher, one `.eml` file per
message, read back with the standard `email` package. Each test registers fresh users with
unique addresses, so a user's mail is exactly the messages addressed to them.

What follows from an event is awaited with `eventually`; an absence (no second reminder, no
email against the preference) is asserted after a wait long enough for the thing to have
happened, counted in reminder scans or behind a later effect that travels the same way.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest
from pymongo import MongoClient
from taskmesh_localrun.testing import TEST_PASSWORD, LocalRun, eventually, json_lines

from .conftest import SHARED_SUITE_RATE_LIMITS, StartSuite

pytestmark = pytest.mark.e2e

NOTIFICATIONS = "/api/v1/notifications"
TASKS = "/api/v1/tasks"
NOTIFICATION_FIELDS = {"id", "type", "title", "body", "task_id", "read", "created_at"}
MISSING_ID = "65f0c0ffee0000000000cccc"
SCAN_INTERVAL_S = 1
QUIET_WAIT_S = 6 * SCAN_INTERVAL_S
"""How long an absence is watched for: several reminder scans of both instances."""
EVENT_TIMEOUT_S = 20.0
"""How long an effect carried by events (and a reminder scan, and SMTP) may take."""
NEW_PASSWORD = "a brand new password, long enough"


@dataclass(frozen=True)
class Account:
    """A user registered through the API: id, address, name and access token."""

    id: str
    email: str
    name: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class NotificationsSuite:
    """The running suite, its mail catcher's directory and its notifications database."""

    run: LocalRun
    mail_dir: Path
    mongo: MongoClient[dict[str, Any]]
    database_prefix: str

    def recipient(self, user_id: str) -> dict[str, Any] | None:
        """The notifications service's read copy of a user's mail settings."""
        return self.mongo[f"{self.database_prefix}notifications"]["recipients"].find_one(
            {"_id": user_id}
        )


@pytest.fixture(scope="module")
def notifications_suite(start_suite: StartSuite) -> Iterator[NotificationsSuite]:
    prefix = f"e2e_notif_{secrets.token_hex(4)}_"
    run = start_suite(
        "--instances",
        "notifications=2",
        MONGODB_DATABASE_PREFIX=prefix,
        REMINDER_SCAN_INTERVAL_S=str(SCAN_INTERVAL_S),
        **SHARED_SUITE_RATE_LIMITS,
    )
    try:
        run.wait_until_readyz()
        for instance in ("notifications", "notifications-2"):  # two schedulers, one database
            assert eventually(lambda instance=instance: scheduler_started(run, instance))
        mongo: MongoClient[dict[str, Any]] = MongoClient(run.state["mongodb_url"], tz_aware=True)
        with mongo:
            yield NotificationsSuite(run, Path(run.state["mail_dir"]), mongo, prefix)
    finally:
        run.close()


def scheduler_started(run: LocalRun, instance: str) -> bool:
    return any(
        record.get("event") == "notifications.reminders_started"
        for record in json_lines(run.log(instance))
    )


@pytest.fixture
def suite(notifications_suite: NotificationsSuite) -> NotificationsSuite:
    return notifications_suite


@pytest.fixture
def client(suite: NotificationsSuite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=suite.run.url, timeout=30) as http:
        yield http


@pytest.fixture
def owner(client: httpx.Client) -> Account:
    return register(client, "Olive Owner")


@pytest.fixture
def assignee(client: httpx.Client) -> Account:
    return register(client, "Arthur Assignee")


# --- helpers ---------------------------------------------------------------------------------


def register(client: httpx.Client, name: str) -> Account:
    email = f"e2e-notif-{uuid.uuid4().hex[:12]}@example.com"
    response = client.post(
        "/api/v1/auth/register", json={"email": email, "password": TEST_PASSWORD, "name": name}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(body["user"]["id"], email, name, body["access_token"])


def create_task(client: httpx.Client, owner: Account, **fields: Any) -> dict[str, Any]:
    body = {"title": f"Task {uuid.uuid4().hex[:8]}", **fields}
    response = client.post(TASKS, json=body, headers=owner.auth)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def patch_task(
    client: httpx.Client, user: Account, task_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = client.patch(f"{TASKS}/{task_id}", json=body, headers=user.auth)
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def due_in(hours: float) -> str:
    return rfc3339(datetime.now(UTC) + timedelta(hours=hours))


def list_page(client: httpx.Client, user: Account, **query: Any) -> dict[str, Any]:
    response = client.get(NOTIFICATIONS, params=query, headers=user.auth)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def all_notifications(client: httpx.Client, user: Account, **query: Any) -> list[dict[str, Any]]:
    """Every notification of the user the query selects, walking all pages."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = list_page(client, user, limit=100, **query, **({"cursor": cursor} if cursor else {}))
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def notifications_of(
    client: httpx.Client, user: Account, kind: str, task_id: str
) -> list[dict[str, Any]]:
    """The user's notifications of one type about one task."""
    return [
        item
        for item in all_notifications(client, user)
        if item["type"] == kind and item["task_id"] == task_id
    ]


def wait_for_count(probe: Callable[[], list[Any]], count: int) -> list[Any]:
    """Wait until probe() lists `count` things; return the last listing."""
    seen: list[list[Any]] = [[]]

    def reached() -> bool:
        seen[0] = probe()
        return len(seen[0]) >= count

    assert eventually(reached, timeout_s=EVENT_TIMEOUT_S), seen[0]
    return seen[0]


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- mail ------------------------------------------------------------------------------------


def mails_to(suite: NotificationsSuite, address: str) -> list[EmailMessage]:
    """Every message the catcher holds for address, in arrival order."""
    messages = []
    for path in sorted(suite.mail_dir.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if address in str(message["To"]):
            messages.append(message)
    return messages


def text_of(message: EmailMessage) -> str:
    """The text/plain body, with the CRLF line ends of SMTP made plain newlines."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    assert isinstance(part, EmailMessage)
    return str(part.get_content()).replace("\r\n", "\n")


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "no text/html part"
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def mails_about(suite: NotificationsSuite, user: Account, task_id: str) -> list[EmailMessage]:
    """The user's messages that link to a task."""
    return [
        message
        for message in mails_to(suite, user.email)
        if f"/tasks/{task_id}" in text_of(message)
    ]


def due_soon_mails(
    suite: NotificationsSuite, user: Account, task: dict[str, Any]
) -> list[EmailMessage]:
    """The user's due-soon reminders of a task (the assignment email links to it too)."""
    return [
        message
        for message in mails_about(suite, user, task["id"])
        if "due soon" in str(message["Subject"]).lower()
    ]


def assignment_mails(
    suite: NotificationsSuite, user: Account, task: dict[str, Any]
) -> list[EmailMessage]:
    return [
        message
        for message in mails_about(suite, user, task["id"])
        if "due soon" not in str(message["Subject"]).lower()
    ]


def opt_out_of_email(client: httpx.Client, suite: NotificationsSuite, user: Account) -> None:
    """Turn the user's email off and wait until the notifications service knows it."""
    response = client.patch(
        "/api/v1/users/me", json={"email_notifications": False}, headers=user.auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["email_notifications"] is False

    def known() -> bool:
        recipient = suite.recipient(user.id)
        return recipient is not None and recipient["email_notifications"] is False

    assert eventually(known, timeout_s=EVENT_TIMEOUT_S)


# --- email on account events -----------------------------------------------------------------


def test_register_sends_a_welcome_email_with_the_name(
    client: httpx.Client, suite: NotificationsSuite
) -> None:
    user = register(client, "Wilhelmina Welcome")

    (message,) = wait_for_count(lambda: mails_to(suite, user.email), 1)

    assert message["To"].addresses[0].addr_spec == user.email
    assert str(message["Subject"]).strip()
    assert message["From"].addresses
    assert "Wilhelmina Welcome" in text_of(message)
    assert "Wilhelmina Welcome" in html_of(message)
    assert f"{suite.run.url}/" in text_of(message)
    time.sleep(2)  # both instances consume the queue: still one
    assert len(mails_to(suite, user.email)) == 1


def test_forgot_password_mails_a_token_that_resets_the_password(
    client: httpx.Client, suite: NotificationsSuite
) -> None:
    user = register(client, "Rita Reset")
    wait_for_count(lambda: mails_to(suite, user.email), 1)  # the welcome email
    opt_out_of_email(client, suite, user)  # the reset email goes out all the same

    response = client.post("/api/v1/auth/forgot-password", json={"email": user.email})
    assert response.status_code == 202, response.text

    messages = wait_for_count(lambda: mails_to(suite, user.email), 2)
    text = text_of(messages[1])
    tokens = re.findall(r"^token: (\S+)$", text, flags=re.MULTILINE)
    assert len(tokens) == 1, text
    token = tokens[0]
    assert f"{suite.run.url}/reset-password?token={quote(token, safe='')}" in text
    reset = client.post(
        "/api/v1/auth/reset-password", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204, reset.text
    login = client.post("/api/v1/auth/login", json={"email": user.email, "password": NEW_PASSWORD})
    assert login.status_code == 200, login.text
    again = client.post(
        "/api/v1/auth/reset-password", json={"token": token, "new_password": TEST_PASSWORD}
    )
    assert again.status_code == 400, again.text


# --- assignment ------------------------------------------------------------------------------


def test_assignment_notifies_the_assignee_in_app_and_by_email(
    client: httpx.Client, suite: NotificationsSuite, owner: Account, assignee: Account
) -> None:
    task = create_task(client, owner)
    started = datetime.now(UTC)

    patch_task(client, owner, task["id"], {"assignee_id": assignee.id})

    (notification,) = wait_for_count(
        lambda: notifications_of(client, assignee, "task.assigned", task["id"]), 1
    )
    assert set(notification) == NOTIFICATION_FIELDS
    assert notification["read"] is False
    assert task["title"] in notification["title"] + notification["body"]
    assert parse_time(notification["created_at"]) >= started - timedelta(seconds=1)
    (message,) = wait_for_count(lambda: assignment_mails(suite, assignee, task), 1)
    assert message["To"].addresses[0].addr_spec == assignee.email
    assert task["title"] in text_of(message)
    assert "Arthur Assignee" in text_of(message)
    assert f"{suite.run.url}/tasks/{task['id']}" in text_of(message)
    assert task["title"] in html_of(message)
    assert all_notifications(client, owner) == []


def test_assigning_a_task_to_oneself_notifies_nobody(
    client: httpx.Client, suite: NotificationsSuite, owner: Account, assignee: Account
) -> None:
    """The rule of docs/notifications.md: one's own assignment is no news."""
    own = create_task(client, owner, assignee_id=owner.id)
    # A later assignment on the same path: once it is through, the first one was too.
    witness = create_task(client, owner, assignee_id=assignee.id)

    wait_for_count(lambda: notifications_of(client, assignee, "task.assigned", witness["id"]), 1)
    time.sleep(2)
    assert all_notifications(client, owner) == []
    assert mails_about(suite, owner, own["id"]) == []


def test_assigning_at_creation_notifies_too(
    client: httpx.Client, suite: NotificationsSuite, owner: Account, assignee: Account
) -> None:
    task = create_task(client, owner, assignee_id=assignee.id)

    wait_for_count(lambda: notifications_of(client, assignee, "task.assigned", task["id"]), 1)
    wait_for_count(lambda: assignment_mails(suite, assignee, task), 1)


def test_the_email_preference_is_honoured_and_in_app_still_arrives(
    client: httpx.Client, suite: NotificationsSuite, owner: Account, assignee: Account
) -> None:
    opt_out_of_email(client, suite, assignee)
    witness = register(client, "Wanda Witness")
    quiet_task = create_task(client, owner, assignee_id=assignee.id)
    # The witness's email is sent after the other's would have been: same path, later event.
    witness_task = create_task(client, owner, assignee_id=witness.id)

    wait_for_count(lambda: notifications_of(client, assignee, "task.assigned", quiet_task["id"]), 1)
    wait_for_count(lambda: assignment_mails(suite, witness, witness_task), 1)
    time.sleep(2)
    assert mails_about(suite, assignee, quiet_task["id"]) == []


def test_turning_email_back_on_sends_email_again(
    client: httpx.Client, suite: NotificationsSuite, owner: Account, assignee: Account
) -> None:
    opt_out_of_email(client, suite, assignee)
    response = client.patch(
        "/api/v1/users/me", json={"email_notifications": True}, headers=assignee.auth
    )
    assert response.status_code == 200, response.text
    assert eventually(
        lambda: (suite.recipient(assignee.id) or {}).get("email_notifications") is True,
        timeout_s=EVENT_TIMEOUT_S,
    )

    task = create_task(client, owner, assignee_id=assignee.id)

    wait_for_count(lambda: assignment_mails(suite, assignee, task), 1)


# --- due-soon reminders ----------------------------------------------------------------------


def test_a_due_soon_reminder_reaches_owner_and_assignee_exactly_once(
    client: httpx.Client, suite: NotificationsSuite, owner: Account, assignee: Account
) -> None:
    task = create_task(client, owner, assignee_id=assignee.id, due_at=due_in(2))

    for user in (owner, assignee):
        (reminder,) = wait_for_count(
            lambda user=user: notifications_of(client, user, "task.due_soon", task["id"]), 1
        )
        assert set(reminder) == NOTIFICATION_FIELDS
        assert task["title"] in reminder["title"] + reminder["body"]
        (message,) = wait_for_count(lambda user=user: due_soon_mails(suite, user, task), 1)
        assert task["title"] in text_of(message)
        assert user.name in text_of(message)

    time.sleep(QUIET_WAIT_S)  # several scans of both instances later: still one each
    for user in (owner, assignee):
        assert len(notifications_of(client, user, "task.due_soon", task["id"])) == 1
        assert len(due_soon_mails(suite, user, task)) == 1
    assert len(assignment_mails(suite, assignee, task)) == 1


def test_the_due_date_in_a_reminder_email_is_in_the_recipients_time_zone(
    client: httpx.Client, suite: NotificationsSuite, owner: Account
) -> None:
    response = client.patch("/api/v1/users/me", json={"timezone": "Asia/Tokyo"}, headers=owner.auth)
    assert response.status_code == 200, response.text
    assert eventually(
        lambda: (suite.recipient(owner.id) or {}).get("timezone") == "Asia/Tokyo",
        timeout_s=EVENT_TIMEOUT_S,
    )

    task = create_task(client, owner, due_at=due_in(5))

    (message,) = wait_for_count(lambda: due_soon_mails(suite, owner, task), 1)
    local = parse_time(task["due_at"]).astimezone(ZoneInfo("Asia/Tokyo"))
    assert f"{local:%Y-%m-%d %H:%M} Asia/Tokyo" in text_of(message)


def test_a_task_due_later_than_a_day_gets_no_reminder_yet(
    client: httpx.Client, owner: Account, assignee: Account
) -> None:
    later = create_task(client, owner, assignee_id=assignee.id, due_at=due_in(30))
    soon = create_task(client, owner, due_at=due_in(1))

    wait_for_count(lambda: notifications_of(client, owner, "task.due_soon", soon["id"]), 1)
    time.sleep(QUIET_WAIT_S)
    for user in (owner, assignee):
        assert notifications_of(client, user, "task.due_soon", later["id"]) == []


def test_moving_the_due_date_re_arms_the_reminder(
    client: httpx.Client, suite: NotificationsSuite, owner: Account, assignee: Account
) -> None:
    task = create_task(client, owner, assignee_id=assignee.id, due_at=due_in(2))
    for user in (owner, assignee):
        wait_for_count(
            lambda user=user: notifications_of(client, user, "task.due_soon", task["id"]), 1
        )

    patch_task(client, owner, task["id"], {"due_at": due_in(3)})

    for user in (owner, assignee):
        wait_for_count(
            lambda user=user: notifications_of(client, user, "task.due_soon", task["id"]), 2
        )
        wait_for_count(lambda user=user: due_soon_mails(suite, user, task), 2)
    time.sleep(QUIET_WAIT_S)
    for user in (owner, assignee):
        assert len(notifications_of(client, user, "task.due_soon", task["id"])) == 2
        assert len(due_soon_mails(suite, user, task)) == 2


# --- completion ------------------------------------------------------------------------------


def test_completion_by_the_assignee_notifies_the_owner(
    client: httpx.Client, owner: Account, assignee: Account
) -> None:
    by_owner = create_task(client, owner, assignee_id=assignee.id)
    by_assignee = create_task(client, owner, assignee_id=assignee.id)

    patch_task(client, owner, by_owner["id"], {"status": "done"})
    patch_task(client, assignee, by_assignee["id"], {"status": "done"})

    (notification,) = wait_for_count(
        lambda: notifications_of(client, owner, "task.completed", by_assignee["id"]), 1
    )
    assert by_assignee["title"] in notification["title"] + notification["body"]
    time.sleep(2)
    assert notifications_of(client, owner, "task.completed", by_owner["id"]) == []
    completed = [n for n in all_notifications(client, assignee) if n["type"] == "task.completed"]
    assert completed == []


# --- listing, read, read-all -----------------------------------------------------------------


def assigned_notifications(
    client: httpx.Client, owner: Account, assignee: Account, count: int
) -> list[dict[str, Any]]:
    """Give the assignee `count` notifications (one assignment each); them, newest first."""
    for _ in range(count):
        create_task(client, owner, assignee_id=assignee.id)
    return wait_for_count(lambda: all_notifications(client, assignee), count)


def test_the_list_is_newest_first_and_pages_without_duplicates(
    client: httpx.Client, owner: Account, assignee: Account
) -> None:
    everything = assigned_notifications(client, owner, assignee, 5)

    walked: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        page = list_page(client, assignee, limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2
        walked.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert [item["id"] for item in walked] == [item["id"] for item in everything]
    assert len({item["id"] for item in walked}) == 5
    times = [parse_time(item["created_at"]) for item in walked]
    assert times == sorted(times, reverse=True)


def test_a_page_is_stable_while_new_notifications_arrive(
    client: httpx.Client, owner: Account, assignee: Account
) -> None:
    assigned_notifications(client, owner, assignee, 3)
    first = list_page(client, assignee, limit=2)
    assert first["next_cursor"] is not None

    create_task(client, owner, assignee_id=assignee.id)  # one more arrives
    rest = wait_for_count(lambda: all_notifications(client, assignee), 4)
    second = list_page(client, assignee, limit=100, cursor=first["next_cursor"])

    first_ids = [item["id"] for item in first["items"]]
    second_ids = [item["id"] for item in second["items"]]
    assert not set(first_ids) & set(second_ids)
    assert first_ids + second_ids == [item["id"] for item in rest][1:]


def test_marking_one_read_drops_it_from_the_unread_list(
    client: httpx.Client, owner: Account, assignee: Account
) -> None:
    everything = assigned_notifications(client, owner, assignee, 3)
    chosen = everything[1]

    response = client.post(f"{NOTIFICATIONS}/{chosen['id']}/read", headers=assignee.auth)

    assert response.status_code == 204, response.text
    assert response.content == b""
    unread = all_notifications(client, assignee, unread="true")
    assert [item["id"] for item in unread] == [everything[0]["id"], everything[2]["id"]]
    listed = {item["id"]: item["read"] for item in all_notifications(client, assignee)}
    assert listed == {everything[0]["id"]: False, chosen["id"]: True, everything[2]["id"]: False}
    again = client.post(f"{NOTIFICATIONS}/{chosen['id']}/read", headers=assignee.auth)
    assert again.status_code == 204, again.text


def test_unread_pages_too(client: httpx.Client, owner: Account, assignee: Account) -> None:
    everything = assigned_notifications(client, owner, assignee, 4)
    read = client.post(f"{NOTIFICATIONS}/{everything[0]['id']}/read", headers=assignee.auth)
    assert read.status_code == 204, read.text

    first = list_page(client, assignee, unread="true", limit=2)
    second = list_page(client, assignee, unread="true", limit=2, cursor=first["next_cursor"])

    assert [item["id"] for item in first["items"] + second["items"]] == [
        item["id"] for item in everything[1:]
    ]
    assert second["next_cursor"] is None
    assert all(item["read"] is False for item in first["items"] + second["items"])


def test_another_users_notification_is_404_and_stays_unread(
    client: httpx.Client, owner: Account, assignee: Account
) -> None:
    (theirs,) = assigned_notifications(client, owner, assignee, 1)

    response = client.post(f"{NOTIFICATIONS}/{theirs['id']}/read", headers=owner.auth)

    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert all_notifications(client, assignee)[0]["read"] is False


@pytest.mark.parametrize("notification_id", [MISSING_ID, "not-an-id"])
def test_an_unknown_notification_is_404(
    client: httpx.Client, owner: Account, notification_id: str
) -> None:
    response = client.post(f"{NOTIFICATIONS}/{notification_id}/read", headers=owner.auth)

    assert response.status_code == 404, response.text


def test_read_all_marks_every_one_read_and_no_one_elses(
    client: httpx.Client, owner: Account, assignee: Account
) -> None:
    assigned_notifications(client, owner, assignee, 3)
    bystander = register(client, "Bea Bystander")
    (theirs,) = assigned_notifications(client, owner, bystander, 1)

    response = client.post(f"{NOTIFICATIONS}/read-all", headers=assignee.auth)

    assert response.status_code == 204, response.text
    assert all_notifications(client, assignee, unread="true") == []
    assert [item["read"] for item in all_notifications(client, assignee)] == [True] * 3
    assert all_notifications(client, bystander, unread="true") == [theirs]
    again = client.post(f"{NOTIFICATIONS}/read-all", headers=assignee.auth)
    assert again.status_code == 204, again.text


def test_a_new_user_has_no_notifications(client: httpx.Client, owner: Account) -> None:
    assert list_page(client, owner) == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", NOTIFICATIONS),
        ("POST", f"{NOTIFICATIONS}/{MISSING_ID}/read"),
        ("POST", f"{NOTIFICATIONS}/read-all"),
    ],
    ids=["list", "read", "read-all"],
)
def test_notifications_need_a_token(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    bad = client.request(method, path, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401, bad.text
