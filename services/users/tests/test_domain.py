"""Unit tests of the profile rules: validation, changes, the list query and its cursor."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from taskmesh_chassis.errors import InvalidArgument
from taskmesh_users.domain import (
    Account,
    Profile,
    Role,
    apply_changes,
    check_changes,
    check_name,
    new_profile,
    to_millisecond,
)
from taskmesh_users.listing import (
    DEFAULT_LIMIT,
    ProfileFilter,
    check_query,
    decode_cursor,
    encode_cursor,
)

USER_ID = "65f0c0ffee00000000000001"
REGISTERED = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def locs(error: pytest.ExceptionInfo[InvalidArgument]) -> list[tuple[str | int, ...]]:
    return [field_error.loc for field_error in error.value.errors]


def a_profile() -> Profile:
    return new_profile(Account(USER_ID, "Ada@Example.org", Role.USER, True, REGISTERED), "Ada")


# --- new profiles ---------------------------------------------------------------------------


def test_new_profile_has_the_defaults_and_auths_identity() -> None:
    profile = a_profile()

    assert (profile.bio, profile.timezone, profile.email_notifications) == ("", "UTC", True)
    assert (profile.email, profile.role, profile.active) == ("ada@example.org", Role.USER, True)
    assert profile.created_at == profile.updated_at == REGISTERED.replace(microsecond=123000)


# --- names ----------------------------------------------------------------------------------


def test_name_is_trimmed() -> None:
    assert check_name("  Ada Lovelace \n") == "Ada Lovelace"


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_name_must_have_1_to_100_characters_after_trimming(name: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_name(name)
    assert locs(raised) == [("body", "name")]


def test_name_of_100_characters_is_accepted() -> None:
    assert check_name(" " + "x" * 100 + " ") == "x" * 100


# --- profile changes ------------------------------------------------------------------------


def test_changes_are_normalised() -> None:
    values = check_changes(
        {"name": " Grace ", "bio": "x" * 500, "timezone": "Europe/Paris", "email_notifications": 0}
    )
    assert values == {
        "name": "Grace",
        "bio": "x" * 500,
        "timezone": "Europe/Paris",
        "email_notifications": False,
    }


def test_every_invalid_field_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_changes({"name": " ", "bio": "x" * 501, "timezone": "Mars/Olympus_Mons"})
    assert locs(raised) == [("body", "name"), ("body", "bio"), ("body", "timezone")]


@pytest.mark.parametrize("timezone", ["europe/paris", "Europe/../Paris", "", "UTC "])
def test_timezone_must_be_an_exact_iana_name(timezone: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_changes({"timezone": timezone})
    assert locs(raised) == [("body", "timezone")]


@pytest.mark.parametrize("timezone", ["UTC", "America/Argentina/Buenos_Aires", "Asia/Kolkata"])
def test_iana_time_zones_are_accepted(timezone: str) -> None:
    assert check_changes({"timezone": timezone}) == {"timezone": timezone}


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_changes({"role": "admin"})
    assert locs(raised) == [("body", "role")]


def test_a_change_to_the_same_values_changes_nothing() -> None:
    profile = a_profile()
    now = REGISTERED + timedelta(days=1)

    change = apply_changes(profile, {"name": "Ada", "timezone": "UTC"}, now)

    assert change.changed == {}
    assert change.after is profile


def test_a_change_names_only_the_fields_that_differ_and_moves_updated_at() -> None:
    profile = a_profile()
    now = to_millisecond(REGISTERED + timedelta(days=1))

    change = apply_changes(profile, {"name": "Ada", "bio": "Analyst"}, now)

    assert change.changed == {"bio": "Analyst"}
    assert (change.after.bio, change.after.updated_at) == ("Analyst", now)
    assert change.after.created_at == profile.created_at


# --- list queries ---------------------------------------------------------------------------


def test_cursor_round_trips() -> None:
    assert decode_cursor(encode_cursor(USER_ID)) == USER_ID


def _cursor(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !",
        "e30",  # {}
        _cursor({"v": 1, "i": "not-an-id"}),
        _cursor({"v": 2, "i": USER_ID}),
        _cursor({"v": 1, "i": USER_ID, "x": 1}),
        _cursor({"v": 1, "i": {"$gt": ""}}),
        _cursor([USER_ID]),
        "A" * 600,
    ],
)
def test_malformed_cursor_is_invalid_at_query_cursor(cursor: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        decode_cursor(cursor)
    assert locs(raised) == [("query", "cursor")]


@pytest.mark.parametrize("limit", [-1, 101])
def test_limit_outside_1_to_100_is_invalid(limit: int) -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_query(ProfileFilter(), limit, "")
    assert locs(raised) == [("query", "limit")]


def test_limit_0_means_the_default_and_text_is_lower_cased() -> None:
    query = check_query(ProfileFilter(text="AdA"), 0, "")
    assert (query.limit, query.filter.text, query.after) == (DEFAULT_LIMIT, "ada", None)


def test_search_text_longer_than_200_is_invalid() -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_query(ProfileFilter(text="x" * 201), 20, "")
    assert locs(raised) == [("query", "q")]
