"""Domain errors: raised where a rule lives, translated to a gRPC status once, at the edge.

Each class carries the status code it becomes and a message that is safe to show to the
caller. Services subclass these (`TaskNotFound(NotFound)`); the gRPC server's error
interceptor turns them into `context.abort(status_code, message)`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

import grpc

# Trailing-metadata key carrying InvalidArgument's field errors as JSON, so the gateway can
# render them as the problem's `errors` list.
FIELD_ERRORS_KEY: Final = "x-field-errors"

Metadata = tuple[tuple[str, str], ...]


class DomainError(Exception):
    """Base of every error a service reports to its caller."""

    status_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    default_message: ClassVar[str] = "the request failed"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def trailing_metadata(self) -> Metadata:
        """Extra detail for the caller, sent as trailing metadata."""
        return ()


class NotFound(DomainError):
    """The thing does not exist, or the caller may not see it."""

    status_code = grpc.StatusCode.NOT_FOUND
    default_message = "not found"


class AlreadyExists(DomainError):
    """Creating it would duplicate something unique (e.g. a taken email)."""

    status_code = grpc.StatusCode.ALREADY_EXISTS
    default_message = "already exists"


class Conflict(DomainError):
    """The request conflicts with the current state (e.g. an admin demoting themself)."""

    status_code = grpc.StatusCode.ABORTED
    default_message = "conflicts with the current state"


class PermissionDenied(DomainError):
    """The caller is known but not allowed to do this."""

    status_code = grpc.StatusCode.PERMISSION_DENIED
    default_message = "permission denied"


class Unauthenticated(DomainError):
    """The caller's credentials are missing or wrong."""

    status_code = grpc.StatusCode.UNAUTHENTICATED
    default_message = "authentication required"


class FailedPrecondition(DomainError):
    """A stated precondition does not hold, e.g. the expected version is not the current one."""

    status_code = grpc.StatusCode.FAILED_PRECONDITION
    default_message = "precondition failed"


class ResourceExhausted(DomainError):
    """A size or quota limit was exceeded (e.g. an upload too large)."""

    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_message = "limit exceeded"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid input: where it is (`("task", "title")`) and what is wrong with it."""

    loc: tuple[str | int, ...]
    msg: str


class InvalidArgument(DomainError):
    """The request is malformed or breaks a validation rule; lists the offending fields."""

    status_code = grpc.StatusCode.INVALID_ARGUMENT
    default_message = "invalid request"

    def __init__(self, message: str | None = None, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.errors = tuple(errors)

    def trailing_metadata(self) -> Metadata:
        """The field errors as JSON under `x-field-errors`, when there are any."""
        if not self.errors:
            return ()
        body = [{"loc": list(error.loc), "msg": error.msg} for error in self.errors]
        return ((FIELD_ERRORS_KEY, json.dumps(body, separators=(",", ":"))),)


def invalid(loc: tuple[str | int, ...], msg: str) -> InvalidArgument:
    """An InvalidArgument naming one offending field, e.g. `invalid(("body", "title"), "...")`."""
    return InvalidArgument("invalid request", [FieldError(loc, msg)])


def field_errors_from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> list[FieldError]:
    """Read the field errors an InvalidArgument sent (for the gateway); [] if none or garbled."""
    for key, value in metadata:
        if key != FIELD_ERRORS_KEY or not isinstance(value, str):
            continue
        try:
            return [FieldError(tuple(item["loc"]), str(item["msg"])) for item in json.loads(value)]
        except (ValueError, TypeError, KeyError):
            return []
    return []
