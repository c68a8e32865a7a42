"""The profile model and its rules: validation, what a change does, the domain errors.

Nothing here knows gRPC or MongoDB. Email, role, active flag and registration time are
copies of auth's account (auth owns them); name, bio, time zone and the email preference
belong to this service. Errors are the domain's own, each carrying the status it becomes at
the edge (taskmesh_chassis.errors).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any, Final

import grpc
from taskmesh_chassis.errors import (
    Conflict,
    DomainError,
    FieldError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from taskmesh_chassis.errors import invalid as invalid
from taskmesh_chassis.mongo import is_object_id as is_object_id

NAME_MAX_LENGTH: Final = 100
BIO_MAX_LENGTH: Final = 500
EMAIL_MAX_LENGTH: Final = 320
DEFAULT_BIO: Final = ""
DEFAULT_TIMEZONE: Final = "UTC"
DEFAULT_EMAIL_NOTIFICATIONS: Final = True

EDITABLE_FIELDS: Final = ("name", "bio", "timezone", "email_notifications")
"""The fields a user may change in their own profile, in the order they are reported."""

Clock = Callable[[], datetime]


def to_millisecond(moment: datetime) -> datetime:
    """The moment in UTC cut to the millisecond (what MongoDB stores, so reads compare equal)."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def utc_now() -> datetime:
    """The current time in UTC, to the millisecond."""
    return to_millisecond(datetime.now(UTC))


class Role(StrEnum):
    """A user's role, as auth decides it."""

    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Account:
    """What auth says of an account: the identity a profile copies."""

    id: str
    email: str
    role: Role
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Profile:
    """A user's profile as stored: their own fields and the copies of auth's."""

    id: str
    email: str
    name: str
    bio: str
    timezone: str
    email_notifications: bool
    role: Role
    active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking: their user id and whether their verified token says admin."""

    user_id: str
    is_admin: bool = False


def new_profile(account: Account, name: str) -> Profile:
    """The first profile of an account: the defaults, last updated when it was registered.

    CreateProfile and the `user.registered` consumer both build it this way, so whichever
    writes first stores the same profile.
    """
    created_at = to_millisecond(account.created_at)
    return Profile(
        id=account.id,
        email=normalise_email(account.email),
        name=name,
        bio=DEFAULT_BIO,
        timezone=DEFAULT_TIMEZONE,
        email_notifications=DEFAULT_EMAIL_NOTIFICATIONS,
        role=account.role,
        active=account.active,
        created_at=created_at,
        updated_at=created_at,
    )


# --- errors -----------------------------------------------------------------------------


class ProfileNotFound(NotFound):
    """The caller has no profile (none yet, or the account was deleted)."""

    default_message = "profile not found"


class UserNotFound(NotFound):
    """No such user (unknown or malformed id, or, for a lookup, no active user)."""

    default_message = "user not found"


class ProfileBusy(Conflict):
    """Concurrent writes to the profile kept conflicting with this one, which changed nothing."""

    default_message = "the profile is changing too often; try again"


class AdminsOnly(PermissionDenied):
    """The caller is not an admin."""

    default_message = "only admins may do this"


class AuthUnavailable(DomainError):
    """The account cannot be read from auth right now (auth is down)."""

    status_code = grpc.StatusCode.UNAVAILABLE
    default_message = "the account service is unavailable"


class AuthTimedOut(DomainError):
    """Auth did not answer within its deadline."""

    status_code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_message = "the account service did not answer in time"


# --- validation --------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    """The form every email is stored and compared in: stripped and lower-cased (as auth)."""
    return email.strip().lower()


@cache
def known_time_zones() -> frozenset[str]:
    """Every IANA time zone name (from the `tzdata` package where the system has none)."""
    return frozenset(zoneinfo.available_timezones())


def name_errors(name: str, loc: tuple[str, ...]) -> list[FieldError]:
    """What is wrong with a name already trimmed: 1-100 characters, as register requires."""
    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        return [FieldError(loc, f"must be 1 to {NAME_MAX_LENGTH} characters long")]
    return []


def check_name(name: str, loc: tuple[str, ...] = ("body", "name")) -> str:
    """The trimmed name; InvalidArgument unless it has 1-100 characters."""
    trimmed = name.strip()
    errors = name_errors(trimmed, loc)
    if errors:
        raise InvalidArgument("invalid name", errors)
    return trimmed


def check_changes(values: Mapping[str, Any], loc: tuple[str, ...] = ("body",)) -> dict[str, Any]:
    """Validate and normalise profile changes (only the fields given); InvalidArgument lists all.

    Expects a str name, bio and timezone and a bool email_notifications.
    """
    errors: list[FieldError] = []
    clean: dict[str, Any] = {}
    for field, value in values.items():
        where = (*loc, field)
        if field == "name":
            clean[field] = value.strip()
            errors += name_errors(clean[field], where)
        elif field == "bio":
            if len(value) > BIO_MAX_LENGTH:
                errors.append(FieldError(where, f"at most {BIO_MAX_LENGTH} characters"))
            clean[field] = value
        elif field == "timezone":
            if value not in known_time_zones():
                errors.append(FieldError(where, "not an IANA time zone name"))
            clean[field] = value
        elif field == "email_notifications":
            clean[field] = bool(value)
        else:
            errors.append(FieldError(where, "is not a writable field"))
    if errors:
        raise InvalidArgument("invalid profile", errors)
    return clean


# --- changes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """A profile before and after an update, and the fields whose value changed."""

    before: Profile
    after: Profile
    changed: Mapping[str, Any]


def apply_changes(profile: Profile, values: Mapping[str, Any], now: datetime) -> Change:
    """The profile with checked `values` applied; `changed` is empty when nothing differs."""
    changed = {
        field: values[field]
        for field in EDITABLE_FIELDS
        if field in values and values[field] != getattr(profile, field)
    }
    if not changed:
        return Change(profile, profile, {})
    return Change(profile, replace(profile, **changed, updated_at=now), changed)
