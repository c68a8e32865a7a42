"""Every row of API.md's Users section, through Traefik, against the whole suite.

The suite of this module starts with a bootstrap admin, rate limits lifted (they have tests
of their own) and an events exchange of its own, deleted afterwards: its `user.*` events
reach only its own consumers, never those of another suite on the same RabbitMQ. Each test
registers fresh users. What follows from an event (role and active copies in users, the
effects of a deletion in every service) is awaited with `eventually`; what the contract
promises at once (the profile right after register, an answer showing the new role, login
refused after a deletion) is checked at once.

The deletion tests give the doomed user an assignment (hence a notification and an email
record) and watch both go from the notifications database, while the witness's stay; they
read the tasks database directly to see a deletion wait while the tasks service is down.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import MongoClient
from pymongo.database import Database
from taskmesh_localrun.testing import TEST_PASSWORD, LocalRun, eventually

from .conftest import SHARED_SUITE_RATE_LIMITS, StartSuite

pytestmark = pytest.mark.e2e

ADMIN_EMAIL = "e2e-users-admin@example.com"
ADMIN_PASSWORD = "e2e users admin password, long enough"
PROBLEM_JSON = "application/problem+json"
USERS = "/api/v1/users"
TASKS = "/api/v1/tasks"
MISSING_ID = "65f0c0ffee0000000000bbbb"
PROFILE_FIELDS = {
    "id",
    "email",
    "name",
    "bio",
    "timezone",
    "email_notifications",
    "role",
    "active",
    "created_at",
    "updated_at",
}
EVENT_TIMEOUT_S = 15.0
"""How long an effect carried by an event may take (it takes well under a second)."""
RESTART_TIMEOUT_S = 30.0
"""How long a deletion may take to complete once a stopped service is back."""


@dataclass(frozen=True)
class UsersSuite:
    """The running suite and its databases, for what the API cannot show."""

    run: LocalRun
    database_prefix: str
    mongo: MongoClient[dict[str, Any]]

    @property
    def url(self) -> str:
        return self.run.url

    def database(self, service: str) -> Database[dict[str, Any]]:
        return self.mongo[f"{self.database_prefix}{service}"]


@dataclass(frozen=True)
class Account:
    """A registered user, with what it registered with and its tokens."""

    id: str
    email: str
    name: str
    token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)


@pytest.fixture(scope="module")
def users_suite(start_suite: StartSuite) -> Iterator[UsersSuite]:
    prefix = f"e2e_users_{secrets.token_hex(4)}_"
    run = start_suite(
        MONGODB_DATABASE_PREFIX=prefix,
        BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        **SHARED_SUITE_RATE_LIMITS,
    )
    try:
        run.wait_until_readyz()
        mongo: MongoClient[dict[str, Any]] = MongoClient(run.state["mongodb_url"], tz_aware=True)
        with mongo:
            yield UsersSuite(run, prefix, mongo)
    finally:
        run.close()


@pytest.fixture
def client(users_suite: UsersSuite) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=users_suite.url, timeout=30) as http:
        yield http


@pytest.fixture
def user(client: httpx.Client) -> Account:
    return register(client)


@pytest.fixture
def other(client: httpx.Client) -> Account:
    return register(client, "Grace Hopper")


@pytest.fixture
def admin(client: httpx.Client) -> Account:
    return logged_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)


@pytest.fixture
def second_admin(client: httpx.Client, admin: Account) -> Account:
    """A user the bootstrap admin promoted, logged in again to hold an admin token.

    Tests that an admin cannot remove themself use this one: were the rule broken, the
    bootstrap admin would stay untouched for the other tests.
    """
    account = register(client, "Second Admin")
    response = client.patch(f"{USERS}/{account.id}", json={"role": "admin"}, headers=admin.auth)
    assert response.status_code == 200, response.text
    return logged_in(client, account.email)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique_email(label: str = "e2e-users") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}@example.com"


def register(client: httpx.Client, name: str = "Ada Lovelace", email: str | None = None) -> Account:
    email = email or unique_email()
    response = client.post(
        "/api/v1/auth/register", json={"email": email, "password": TEST_PASSWORD, "name": name}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(
        body["user"]["id"], email, name.strip(), body["access_token"], body["refresh_token"]
    )


def login(client: httpx.Client, email: str, password: str = TEST_PASSWORD) -> httpx.Response:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def logged_in(client: httpx.Client, email: str, password: str = TEST_PASSWORD) -> Account:
    response = login(client, email, password)
    assert response.status_code == 200, response.text
    tokens = response.json()
    me = client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    return Account(me.json()["id"], email, "", tokens["access_token"], tokens["refresh_token"])


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


def my_profile(client: httpx.Client, account: Account) -> dict[str, Any]:
    response = client.get(f"{USERS}/me", headers=account.auth)
    assert response.status_code == 200, response.text
    profile: dict[str, Any] = response.json()
    return profile


def patch_me(client: httpx.Client, account: Account, body: dict[str, Any]) -> httpx.Response:
    return client.patch(f"{USERS}/me", json=body, headers=account.auth)


def patch_user(
    client: httpx.Client, admin: Account, user_id: str, body: dict[str, Any]
) -> httpx.Response:
    return client.patch(f"{USERS}/{user_id}", json=body, headers=admin.auth)


def lookup(client: httpx.Client, caller: Account, email: str) -> httpx.Response:
    return client.get(f"{USERS}/lookup", params={"email": email}, headers=caller.auth)


def list_users(client: httpx.Client, admin: Account, **query: Any) -> list[dict[str, Any]]:
    """Every profile the filters select, walking all pages."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 100, **query, **({"cursor": cursor} if cursor else {})}
        response = client.get(USERS, params=params, headers=admin.auth)
        assert response.status_code == 200, response.text
        items.extend(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


def listed_ids(client: httpx.Client, admin: Account, **query: Any) -> set[str]:
    return {profile["id"] for profile in list_users(client, admin, **query)}


def status_of(request: Callable[[], httpx.Response]) -> Callable[[], int]:
    return lambda: request().status_code


def becomes(probe: Callable[[], Any], expected: Any, timeout_s: float = EVENT_TIMEOUT_S) -> bool:
    """Whether probe() returns expected within timeout_s."""
    return eventually(lambda: probe() == expected, timeout_s=timeout_s)


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- GET /users/me ---------------------------------------------------------------------------


def test_my_profile_is_there_the_moment_register_has_answered(client: httpx.Client) -> None:
    email = unique_email()
    response = client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": TEST_PASSWORD, "name": "Katherine Johnson"},
    )
    assert response.status_code == 201, response.text
    token = response.json()["access_token"]

    profile = client.get(f"{USERS}/me", headers=bearer(token))

    assert profile.status_code == 200, profile.text
    body = profile.json()
    assert set(body) == PROFILE_FIELDS
    assert body["id"] == response.json()["user"]["id"]
    assert (body["email"], body["name"]) == (email, "Katherine Johnson")
    assert (body["bio"], body["timezone"], body["email_notifications"]) == ("", "UTC", True)
    assert (body["role"], body["active"]) == ("user", True)
    assert parse_time(body["created_at"]) <= parse_time(body["updated_at"])
    assert parse_time(body["created_at"]) <= datetime.now(UTC)


def test_my_profile_needs_a_token(client: httpx.Client) -> None:
    response = client.get(f"{USERS}/me")

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_bootstrap_admin_has_a_profile_too(client: httpx.Client, admin: Account) -> None:
    """Its only source is auth's `user.registered` at start-up: auth starts after users."""
    response: list[httpx.Response] = []

    def fetched() -> int:
        response.append(client.get(f"{USERS}/me", headers=admin.auth))
        return response[-1].status_code

    assert becomes(fetched, 200), response[-1].text
    profile = response[-1].json()
    assert (profile["email"], profile["role"], profile["active"]) == (ADMIN_EMAIL, "admin", True)


# --- PATCH /users/me -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Ada King"),
        ("bio", "Analyst of the Analytical Engine."),
        ("timezone", "Europe/London"),
        ("email_notifications", False),
    ],
)
def test_patching_one_field_changes_it_and_nothing_else(
    client: httpx.Client, user: Account, field: str, value: Any
) -> None:
    before = my_profile(client, user)

    response = patch_me(client, user, {field: value})

    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed[field] == value
    unchanged = PROFILE_FIELDS - {field, "updated_at"}
    assert {key: changed[key] for key in unchanged} == {key: before[key] for key in unchanged}
    assert parse_time(changed["updated_at"]) >= parse_time(before["updated_at"])
    assert my_profile(client, user) == changed


def test_patching_every_field_at_once(client: httpx.Client, user: Account) -> None:
    body = {
        "name": "Ada, Countess of Lovelace",
        "bio": "b" * 500,
        "timezone": "America/Argentina/Buenos_Aires",
        "email_notifications": False,
    }

    response = patch_me(client, user, body)

    assert response.status_code == 200, response.text
    assert {key: response.json()[key] for key in body} == body
    assert {key: my_profile(client, user)[key] for key in body} == body


def test_the_name_is_trimmed(client: httpx.Client, user: Account) -> None:
    response = patch_me(client, user, {"name": "   Ada Byron \t"})

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Ada Byron"
    assert my_profile(client, user)["name"] == "Ada Byron"


@pytest.mark.parametrize(
    "body",
    [
        {"bio": "b" * 501},
        {"timezone": "Mars/Olympus_Mons"},
        {"timezone": ""},
        {"nickname": "Ada"},
        {"role": "admin"},
        {"active": False},
        {"email": "someone-else@example.com"},
        {"name": "   "},
        {"name": "n" * 101},
        {"bio": {"$set": "x"}},
    ],
    ids=[
        "bio-501",
        "unknown-timezone",
        "empty-timezone",
        "unknown-field",
        "role",
        "active",
        "email",
        "blank-name",
        "long-name",
        "operator-bio",
    ],
)
def test_an_invalid_patch_is_422_and_changes_nothing(
    client: httpx.Client, user: Account, body: dict[str, Any]
) -> None:
    before = my_profile(client, user)

    response = patch_me(client, user, body)

    problem = assert_problem(response, 422)
    assert problem["errors"]
    assert my_profile(client, user) == before


# --- GET /users/lookup -----------------------------------------------------------------------


def test_lookup_finds_an_active_user_by_exact_email_in_any_case(
    client: httpx.Client, user: Account, other: Account
) -> None:
    for email in (other.email, other.email.upper(), other.email.capitalize()):
        response = lookup(client, user, email)

        assert response.status_code == 200, response.text
        assert response.json() == {"id": other.id, "name": other.name}


@pytest.mark.parametrize(
    "make_query",
    [
        lambda email: email.split("@")[0],
        lambda email: email[:-1],
        lambda email: email[1:],
        lambda email: "@example.com",
        lambda email: f"x{email}",
        lambda email: ".*",
        lambda email: f"{email[:5]}.*",
    ],
    ids=["local-part", "prefix", "suffix", "domain", "longer", "regex-all", "regex-prefix"],
)
def test_lookup_never_matches_part_of_an_email(
    client: httpx.Client, user: Account, other: Account, make_query: Callable[[str], str]
) -> None:
    assert_problem(lookup(client, user, make_query(other.email)), 404)


def test_lookup_of_an_unknown_email_is_404(client: httpx.Client, user: Account) -> None:
    assert_problem(lookup(client, user, unique_email("nobody")), 404)


def test_lookup_needs_the_email_parameter(client: httpx.Client, user: Account) -> None:
    assert_problem(client.get(f"{USERS}/lookup", headers=user.auth), 422)


def test_lookup_of_a_deactivated_user_is_404_and_200_again_once_reactivated(
    client: httpx.Client, admin: Account, user: Account, other: Account
) -> None:
    assert patch_user(client, admin, other.id, {"active": False}).status_code == 200

    assert becomes(status_of(lambda: lookup(client, user, other.email)), 404)

    assert patch_user(client, admin, other.id, {"active": True}).status_code == 200
    assert becomes(status_of(lambda: lookup(client, user, other.email)), 200)


# --- administration: who may -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("GET", "/{id}", None),
        ("PATCH", "/{id}", {"role": "admin"}),
        ("PATCH", "/{id}", {"active": False}),
        ("DELETE", "/{id}", None),
    ],
    ids=["list", "get", "promote", "deactivate", "delete"],
)
def test_the_admin_routes_are_403_for_a_user(
    client: httpx.Client,
    admin: Account,
    user: Account,
    other: Account,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    for target in (other.id, user.id):
        response = client.request(
            method, USERS + path.format(id=target), json=body, headers=user.auth
        )

        assert_problem(response, 403)
    for account in (user, other):
        profile = client.get(f"{USERS}/{account.id}", headers=admin.auth)
        assert profile.status_code == 200, profile.text
        assert (profile.json()["role"], profile.json()["active"]) == ("user", True)
        assert login(client, account.email).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/me"),
        ("PATCH", "/me"),
        ("DELETE", "/me"),
        ("GET", "/lookup?email=a@example.com"),
        ("GET", ""),
        ("GET", f"/{MISSING_ID}"),
        ("PATCH", f"/{MISSING_ID}"),
        ("DELETE", f"/{MISSING_ID}"),
    ],
)
def test_every_users_route_is_401_without_a_token(
    client: httpx.Client, method: str, path: str
) -> None:
    body: dict[str, Any] | None = {} if method == "PATCH" else None

    response = client.request(method, USERS + path, json=body)

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


# --- GET /users (admins) ---------------------------------------------------------------------


def test_the_list_holds_profiles_and_pages_of_the_requested_size(
    client: httpx.Client, admin: Account
) -> None:
    for _ in range(3):
        register(client)

    response = client.get(USERS, params={"limit": 2}, headers=admin.auth)

    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "next_cursor"}
    assert len(page["items"]) == 2
    assert isinstance(page["next_cursor"], str)
    assert all(set(item) == PROFILE_FIELDS for item in page["items"])


def test_q_matches_a_substring_of_the_name_or_email_in_any_case(
    client: httpx.Client, admin: Account
) -> None:
    tag = secrets.token_hex(5)
    by_name = register(client, f"Named {tag} Person")
    by_email = register(client, "Someone", email=f"{tag}-mail@example.com")
    register(client, "Unrelated Person")

    assert listed_ids(client, admin, q=tag) == {by_name.id, by_email.id}
    assert listed_ids(client, admin, q=tag.upper()) == {by_name.id, by_email.id}
    assert listed_ids(client, admin, q=f"{tag}-mail@") == {by_email.id}
    assert listed_ids(client, admin, q=f"ed {tag} pe") == {by_name.id}


def test_q_is_a_plain_substring_never_a_pattern(client: httpx.Client, admin: Account) -> None:
    tag = secrets.token_hex(5)
    dotted = register(client, f"{tag} a.c")
    register(client, f"{tag} abc")

    assert listed_ids(client, admin, q=f"{tag} a.c") == {dotted.id}
    assert listed_ids(client, admin, q=f"{tag}.*") == set()
    assert listed_ids(client, admin, q="^") == set()


def test_role_and_active_filters(client: httpx.Client, admin: Account) -> None:
    tag = secrets.token_hex(5)
    plain, promoted, deactivated = (register(client, f"{tag} {n}") for n in ("p", "a", "d"))
    assert patch_user(client, admin, promoted.id, {"role": "admin"}).status_code == 200
    assert patch_user(client, admin, deactivated.id, {"active": False}).status_code == 200

    assert becomes(lambda: listed_ids(client, admin, q=tag, role="admin"), {promoted.id})
    assert becomes(lambda: listed_ids(client, admin, q=tag, active="false"), {deactivated.id})
    assert listed_ids(client, admin, q=tag, role="user") == {plain.id, deactivated.id}
    assert listed_ids(client, admin, q=tag, active="true") == {plain.id, promoted.id}
    assert listed_ids(client, admin, q=tag, role="user", active="true") == {plain.id}
    assert listed_ids(client, admin, q=tag) == {plain.id, promoted.id, deactivated.id}
    assert ADMIN_EMAIL in {p["email"] for p in list_users(client, admin, role="admin")}


@pytest.mark.parametrize(
    "query",
    [
        {"role": "superuser"},
        {"active": "maybe"},
        {"limit": 0},
        {"limit": 101},
        {"cursor": "not-a-cursor"},
    ],
    ids=["role", "active", "limit-0", "limit-101", "cursor"],
)
def test_a_list_query_out_of_range_is_422(
    client: httpx.Client, admin: Account, query: dict[str, Any]
) -> None:
    assert_problem(client.get(USERS, params=query, headers=admin.auth), 422)


def test_a_paging_walk_sees_every_user_once_while_users_register(
    client: httpx.Client, admin: Account
) -> None:
    tag = secrets.token_hex(5)
    existing = {register(client, f"Walker {tag} {n}").id for n in range(7)}
    seen: list[str] = []
    added_midway: set[str] = set()
    cursor: str | None = None
    pages = 0

    while True:
        params: dict[str, str | int] = {"q": tag, "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = client.get(USERS, params=params, headers=admin.auth)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        if pages in (1, 3):
            added_midway |= {register(client, f"Walker {tag} late {pages}-{n}").id for n in (1, 2)}
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 20, "the walk does not end"

    assert len(seen) == len(set(seen)), "a user appeared twice"
    assert existing <= set(seen)
    assert set(seen) <= existing | added_midway


# --- GET /users/{id} (admins) ----------------------------------------------------------------


def test_an_admin_reads_any_profile(client: httpx.Client, admin: Account, user: Account) -> None:
    patched = patch_me(client, user, {"bio": "Visible to admins", "timezone": "Asia/Tokyo"})
    assert patched.status_code == 200, patched.text

    response = client.get(f"{USERS}/{user.id}", headers=admin.auth)

    assert response.status_code == 200, response.text
    assert response.json() == patched.json()


def test_reading_an_unknown_user_is_404(client: httpx.Client, admin: Account) -> None:
    assert_problem(client.get(f"{USERS}/{MISSING_ID}", headers=admin.auth), 404)


# --- PATCH /users/{id} (admins) --------------------------------------------------------------


def test_promoting_then_demoting_a_user(
    client: httpx.Client, admin: Account, user: Account
) -> None:
    promoted = patch_user(client, admin, user.id, {"role": "admin"})

    assert promoted.status_code == 200, promoted.text
    assert set(promoted.json()) == PROFILE_FIELDS
    assert (promoted.json()["id"], promoted.json()["role"]) == (user.id, "admin")
    assert becomes(
        lambda: client.get(f"{USERS}/{user.id}", headers=admin.auth).json()["role"], "admin"
    )
    as_admin = logged_in(client, user.email)
    assert client.get(USERS, params={"limit": 1}, headers=as_admin.auth).status_code == 200

    demoted = patch_user(client, admin, user.id, {"role": "user"})

    assert demoted.status_code == 200, demoted.text
    assert demoted.json()["role"] == "user"
    assert eventually(
        lambda: (
            client.get(USERS, params={"limit": 1}, headers=as_admin.auth).status_code in (401, 403)
        ),
        timeout_s=1.0,
    ), "the demoted admin's token still lists users a second later"
    as_user = logged_in(client, user.email)
    assert_problem(client.get(USERS, headers=as_user.auth), 403)
    assert becomes(
        lambda: client.get(f"{USERS}/{user.id}", headers=admin.auth).json()["role"], "user"
    )


def test_deactivating_a_user_stops_their_login_and_their_tokens(
    client: httpx.Client, admin: Account, user: Account
) -> None:
    response = patch_user(client, admin, user.id, {"active": False})

    assert response.status_code == 200, response.text
    assert (response.json()["active"], response.json()["role"]) == (False, "user")
    assert_problem(login(client, user.email), 403)
    assert becomes(status_of(lambda: client.get(f"{USERS}/me", headers=user.auth)), 401, 1.0)
    assert becomes(
        lambda: client.get(f"{USERS}/{user.id}", headers=admin.auth).json()["active"], False
    )

    reactivated = patch_user(client, admin, user.id, {"active": True})

    assert reactivated.status_code == 200, reactivated.text
    assert reactivated.json()["active"] is True
    assert login(client, user.email).status_code == 200


def test_both_changes_in_one_patch(client: httpx.Client, admin: Account, user: Account) -> None:
    response = patch_user(client, admin, user.id, {"role": "admin", "active": False})

    assert response.status_code == 200, response.text
    assert (response.json()["role"], response.json()["active"]) == ("admin", False)
    assert becomes(
        lambda: {
            key: client.get(f"{USERS}/{user.id}", headers=admin.auth).json()[key]
            for key in ("role", "active")
        },
        {"role": "admin", "active": False},
    )


@pytest.mark.parametrize(
    "body", [{"role": "user"}, {"active": False}], ids=["demote", "deactivate"]
)
def test_an_admin_cannot_demote_or_deactivate_themself(
    client: httpx.Client, second_admin: Account, body: dict[str, Any]
) -> None:
    response = patch_user(client, second_admin, second_admin.id, body)

    assert_problem(response, 409)
    assert client.get(USERS, params={"limit": 1}, headers=second_admin.auth).status_code == 200
    assert login(client, second_admin.email).status_code == 200
    assert becomes(
        lambda: {
            key: client.get(f"{USERS}/{second_admin.id}", headers=second_admin.auth).json()[key]
            for key in ("role", "active")
        },
        {"role": "admin", "active": True},
    )


@pytest.mark.parametrize(
    "body",
    [{"role": "superuser"}, {"active": "maybe"}, {"email": "x@example.com"}, {"role": {"$ne": 1}}],
    ids=["role", "active", "unknown-field", "operator"],
)
def test_an_invalid_user_patch_is_422(
    client: httpx.Client, admin: Account, user: Account, body: dict[str, Any]
) -> None:
    assert_problem(patch_user(client, admin, user.id, body), 422)
    profile = client.get(f"{USERS}/{user.id}", headers=admin.auth).json()
    assert (profile["role"], profile["active"]) == ("user", True)


def test_patching_an_unknown_user_is_404(client: httpx.Client, admin: Account) -> None:
    assert_problem(patch_user(client, admin, MISSING_ID, {"active": False}), 404)


# --- DELETE /users/me and /users/{id} --------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    """What a user about to be deleted leaves in every service, and a witness's own data."""

    own_task_id: str
    """Owned by the doomed user, assigned to the witness, with an attachment."""
    attachment_id: str
    others_task_id: str
    """Owned by the witness, assigned to the doomed user."""
    notification_id: ObjectId
    witness_notification_id: ObjectId


def create_task(client: httpx.Client, owner: Account, **fields: Any) -> dict[str, Any]:
    response = client.post(TASKS, json={"title": "A task", **fields}, headers=owner.auth)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def first_notification_id(client: httpx.Client, account: Account) -> str:
    """The id of the account's first notification (an assignment), once it has arrived."""
    found: list[str] = []

    def arrived() -> bool:
        response = client.get("/api/v1/notifications", headers=account.auth)
        assert response.status_code == 200, response.text
        found[:] = [item["id"] for item in response.json()["items"]]
        return bool(found)

    assert eventually(arrived, timeout_s=EVENT_TIMEOUT_S), f"no notification for {account.email}"
    return found[0]


def leave_footprint(
    client: httpx.Client, suite: UsersSuite, doomed: Account, witness: Account
) -> Footprint:
    own = create_task(client, doomed, title="Doomed's task", assignee_id=witness.id)
    attachment = client.post(
        f"{TASKS}/{own['id']}/attachments",
        files={"file": ("notes.txt", b"soon gone", "text/plain")},
        headers=doomed.auth,
    )
    assert attachment.status_code == 201, attachment.text
    others = create_task(client, witness, title="Witness's task", assignee_id=doomed.id)
    notification_id = first_notification_id(client, doomed)
    witness_notification_id = first_notification_id(client, witness)
    assert client.get(f"{TASKS}/{own['id']}", headers=witness.auth).status_code == 200
    return Footprint(
        own_task_id=own["id"],
        attachment_id=attachment.json()["id"],
        others_task_id=others["id"],
        notification_id=ObjectId(notification_id),
        witness_notification_id=ObjectId(witness_notification_id),
    )


def assert_login_stops_at_once(client: httpx.Client, doomed: Account) -> None:
    assert_problem(login(client, doomed.email), 401)
    assert eventually(
        lambda: (
            client.get("/api/v1/auth/me", headers=doomed.auth).status_code == 401
            and client.get(f"{USERS}/me", headers=doomed.auth).status_code == 401
        ),
        timeout_s=1.0,
    ), "the deleted user's access token still works a second later"
    assert_problem(
        client.post("/api/v1/auth/refresh", json={"refresh_token": doomed.refresh_token}), 401
    )


def assert_gone_from_users_and_notifications(
    client: httpx.Client,
    suite: UsersSuite,
    admin: Account,
    doomed: Account,
    witness: Account,
    footprint: Footprint,
) -> None:
    assert becomes(status_of(lambda: client.get(f"{USERS}/{doomed.id}", headers=admin.auth)), 404)
    assert listed_ids(client, admin, q=doomed.email) == set()
    assert_problem(lookup(client, witness, doomed.email), 404)
    notifications = suite.database("notifications")["notifications"]
    assert becomes(lambda: notifications.count_documents({"_id": footprint.notification_id}), 0), (
        "the deleted user's notification is still there"
    )
    assert notifications.count_documents({"_id": footprint.witness_notification_id}) == 1
    emails = suite.database("notifications")["emails"]
    assert becomes(lambda: emails.count_documents({"user_id": doomed.id}), 0), (
        "the deleted user's email records are still there"
    )
    assert emails.count_documents({"user_id": witness.id}) >= 1


def assert_gone_from_tasks(
    client: httpx.Client,
    suite: UsersSuite,
    doomed: Account,
    witness: Account,
    footprint: Footprint,
    timeout_s: float = EVENT_TIMEOUT_S,
) -> None:
    own_url = f"{TASKS}/{footprint.own_task_id}"
    assert becomes(status_of(lambda: client.get(own_url, headers=witness.auth)), 404, timeout_s), (
        "the deleted user's task is still visible to its assignee"
    )

    def others_assignee() -> Any:
        response = client.get(f"{TASKS}/{footprint.others_task_id}", headers=witness.auth)
        return response.json()["assignee_id"] if response.status_code == 200 else "unreadable"

    assert becomes(others_assignee, None, timeout_s), "still assigned to the deleted user"
    tasks = suite.database("tasks")
    assert tasks["tasks"].count_documents({"owner_id": doomed.id}) == 0
    assert tasks["tasks"].count_documents({"assignee_id": doomed.id}) == 0
    assert tasks["tasks"].count_documents({"_id": ObjectId(footprint.others_task_id)}) == 1
    assert becomes(
        lambda: tasks["attachments.files"].count_documents(
            {"metadata.task_id": ObjectId(footprint.own_task_id)}
        ),
        0,
        timeout_s,
    ), "the deleted user's attachment is still stored"
    assert (
        tasks["attachments.chunks"].count_documents({"files_id": ObjectId(footprint.attachment_id)})
        == 0
    )


@pytest.mark.parametrize("by", ["self", "admin"])
def test_a_deletion_reaches_every_service(
    client: httpx.Client, users_suite: UsersSuite, admin: Account, other: Account, by: str
) -> None:
    suite = users_suite
    doomed = register(client, "Doomed User")
    footprint = leave_footprint(client, suite, doomed, other)

    if by == "self":
        response = client.delete(f"{USERS}/me", headers=doomed.auth)
    else:
        response = client.delete(f"{USERS}/{doomed.id}", headers=admin.auth)

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert_login_stops_at_once(client, doomed)
    assert_gone_from_users_and_notifications(client, suite, admin, doomed, other, footprint)
    assert_gone_from_tasks(client, suite, doomed, other, footprint)
    assert login(client, other.email).status_code == 200
    assert my_profile(client, other)["name"] == other.name


def test_a_deleted_users_email_registers_again_at_once_with_a_fresh_profile(
    client: httpx.Client, admin: Account, other: Account
) -> None:
    doomed = register(client, "First Owner")
    assert client.delete(f"{USERS}/me", headers=doomed.auth).status_code == 204

    successor = register(client, "Second Owner", email=doomed.email)

    profile = my_profile(client, successor)
    assert (profile["id"], profile["email"], profile["name"]) == (
        successor.id,
        doomed.email,
        "Second Owner",
    )
    assert successor.id != doomed.id
    assert becomes(status_of(lambda: client.get(f"{USERS}/{doomed.id}", headers=admin.auth)), 404)
    assert my_profile(client, successor)["name"] == "Second Owner"
    assert lookup(client, other, doomed.email).json() == {
        "id": successor.id,
        "name": "Second Owner",
    }


def test_deleting_an_unknown_user_is_404(client: httpx.Client, admin: Account) -> None:
    assert_problem(client.delete(f"{USERS}/{MISSING_ID}", headers=admin.auth), 404)


def test_a_deletion_while_tasks_is_down_completes_once_it_is_back(
    client: httpx.Client, users_suite: UsersSuite, admin: Account, other: Account
) -> None:
    suite = users_suite
    doomed = register(client, "Doomed While Tasks Sleeps")
    footprint = leave_footprint(client, suite, doomed, other)
    tasks = suite.database("tasks")["tasks"]

    suite.run.stop_process("tasks")
    try:
        response = client.delete(f"{USERS}/me", headers=doomed.auth)

        assert response.status_code == 204, response.text
        assert_login_stops_at_once(client, doomed)
        assert_gone_from_users_and_notifications(client, suite, admin, doomed, other, footprint)
        own = {"_id": ObjectId(footprint.own_task_id), "owner_id": doomed.id}
        others = {"_id": ObjectId(footprint.others_task_id), "assignee_id": doomed.id}
        assert tasks.count_documents(own) == 1, "tasks changed while its service was down"
        assert tasks.count_documents(others) == 1
    finally:
        suite.run.restart_exited()

    assert_gone_from_tasks(client, suite, doomed, other, footprint, RESTART_TIMEOUT_S)
