"""The identity domain: accounts, login sessions, single-use tokens, their rules and errors.

Nothing here knows gRPC, MongoDB or Redis. Emails are kept normalised (stripped,
lower-cased), so equality of stored emails is the case-insensitive comparison API.md asks for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Final

import grpc
from taskmesh_chassis.errors import (
    AlreadyExists,
    Conflict,
    DomainError,
    FieldError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)

PASSWORD_MIN_LENGTH: Final = 8
PASSWORD_MAX_LENGTH: Final = 128
# A password being checked (not chosen) longer than this cannot be right; refusing it
# early keeps a huge input from costing a hash.
PRESENTED_PASSWORD_MAX_LENGTH: Final = 1024
NAME_MAX_LENGTH: Final = 100
EMAIL_MAX_LENGTH: Final = 254

_EMAIL_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")
_EMAIL_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

Clock = Callable[[], datetime]


class Role(StrEnum):
    """What an account may do: `admin` also administers users."""

    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class User:
    """An account: its normalised email, password hash, role and whether it may sign in."""

    id: str
    email: str
    password_hash: str
    role: Role
    active: bool
    created_at: datetime

    @property
    def is_active_admin(self) -> bool:
        """Whether the account counts towards the admins that must always remain."""
        return self.active and self.role is Role.ADMIN

    def with_standing(self, *, role: Role | None, active: bool | None) -> User:
        """The account with its role and/or active flag changed (None leaves one as it is)."""
        return replace(
            self,
            role=self.role if role is None else role,
            active=self.active if active is None else active,
        )


@dataclass(frozen=True, slots=True)
class Session:
    """One login: the family of refresh tokens rotated from it, revoked as a whole."""

    id: str
    user_id: str
    created_at: datetime
    # When the newest refresh token expires; the session is useless afterwards.
    expires_at: datetime
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """A stored refresh token: only its hash, its session and whether it was used."""

    token_hash: str
    session_id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    used: bool = False

    def is_expired(self, now: datetime) -> bool:
        """Whether it can no longer be exchanged, used or not."""
        return now >= self.expires_at


@dataclass(frozen=True, slots=True)
class ResetToken:
    """A stored password-reset token: only its hash, whose it is and until when."""

    token_hash: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    used: bool = False

    def is_usable(self, now: datetime) -> bool:
        """Whether it may still set a password."""
        return not self.used and now < self.expires_at


@dataclass(frozen=True, slots=True)
class Actor:
    """The signed-in user a request acts for, as their verified access token says."""

    user_id: str
    role: Role
    token_id: str
    # When the presented access token expires (epoch seconds).
    token_expires_at: float
    # The login session the token belongs to; None for a token without one.
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class UserStatus:
    """What any authenticated caller may learn of an account: whether it exists and may act."""

    user_id: str
    exists: bool
    active: bool


@dataclass(frozen=True, slots=True)
class StandingChange:
    """A requested change of an account's role and/or active flag."""

    role: Role | None = None
    active: bool | None = None


# --- errors -------------------------------------------------------------------------------


class EmailTaken(AlreadyExists):
    """Another account has this email."""

    default_message = "an account with this email already exists"


class WrongCredentials(Unauthenticated):
    """Unknown email or wrong password: deliberately one error for both."""

    default_message = "wrong email or password"


class AccountDeactivated(PermissionDenied):
    """The credentials are right but an admin deactivated the account."""

    default_message = "this account is deactivated"


class InvalidRefreshToken(Unauthenticated):
    """The refresh token is unknown, expired, or its session has ended."""

    default_message = "the refresh token is invalid or expired"


class RefreshTokenReused(InvalidRefreshToken):
    """A refresh token was presented a second time; its whole session is revoked."""

    default_message = "the refresh token was already used; the session is revoked"


class WrongCurrentPassword(Unauthenticated):
    """Changing the password needs the current one, and it was wrong."""

    default_message = "the current password is wrong"


class AccountGone(Unauthenticated):
    """The token names an account that no longer exists."""

    default_message = "the account no longer exists"


class InvalidResetToken(InvalidArgument):
    """The reset token is unknown, used or expired (HTTP 400, see docs/auth.md)."""

    default_message = "the reset token is invalid, used or expired"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message,
            [FieldError(("body", "token"), message or self.default_message)],
        )


class UserNotFound(NotFound):
    """No account has this id (or the caller may not see it)."""

    default_message = "user not found"


class CannotChangeOwnStanding(Conflict):
    """Admins cannot demote or deactivate themselves."""

    default_message = "admins cannot demote or deactivate themselves"


class LastActiveAdmin(Conflict):
    """The change would leave no active admin."""

    default_message = "the last active admin cannot be demoted, deactivated or deleted"


class NotAllowed(PermissionDenied):
    """The caller may not act on this account."""

    default_message = "not allowed"


class DependencyUnavailable(DomainError):
    """A store the operation must write first (the revocation store) is down; retry later."""

    status_code = grpc.StatusCode.UNAVAILABLE
    default_message = "a dependency is unavailable"


# --- rules ---------------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    """The form every email is stored and compared in: stripped and lower-cased."""
    return email.strip().lower()


def is_valid_email(email: str) -> bool:
    """Whether a (normalised) email is a plausible `local@domain.tld` address."""
    local, at, domain = email.rpartition("@")
    labels = domain.split(".")
    return (
        at == "@"
        and len(email) <= EMAIL_MAX_LENGTH
        and _EMAIL_LOCAL_PART.fullmatch(local) is not None
        and not local.startswith(".")
        and not local.endswith(".")
        and ".." not in local
        and len(labels) >= 2
        and all(_EMAIL_DOMAIN_LABEL.fullmatch(label) for label in labels)
    )


def new_password_errors(password: str, email: str, field: str) -> list[FieldError]:
    """What is wrong with a password being chosen for the account `email`."""
    loc = ("body", field)
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        return [
            FieldError(
                loc,
                f"must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters long",
            )
        ]
    if password.strip().casefold() == email.casefold():
        return [FieldError(loc, "must not equal the email")]
    return []


def check_new_password(password: str, email: str, *, field: str = "password") -> None:
    """Raise InvalidArgument unless `password` may be chosen for the account `email`."""
    errors = new_password_errors(password, email, field)
    if errors:
        raise InvalidArgument("invalid password", errors)


def check_registration(email: str, password: str, name: str) -> tuple[str, str]:
    """Validate a registration; return the normalised email and the trimmed name."""
    email = normalise_email(email)
    name = name.strip()
    errors: list[FieldError] = []
    if not is_valid_email(email):
        errors.append(FieldError(("body", "email"), "not a valid email address"))
    errors += new_password_errors(password, email, "password")
    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        errors.append(
            FieldError(("body", "name"), f"must be 1 to {NAME_MAX_LENGTH} characters long")
        )
    if errors:
        raise InvalidArgument("invalid registration", errors)
    return email, name


def check_standing_change(actor_id: str, target: User, change: StandingChange) -> User:
    """Return the target after the change; refuse an admin demoting or deactivating themself."""
    changed = target.with_standing(role=change.role, active=change.active)
    if actor_id == target.id and target.is_active_admin and not changed.is_active_admin:
        raise CannotChangeOwnStanding()
    return changed


def removes_an_active_admin(before: User, after: User | None) -> bool:
    """Whether the change (None: deletion) reduces the number of active admins."""
    return before.is_active_admin and (after is None or not after.is_active_admin)
