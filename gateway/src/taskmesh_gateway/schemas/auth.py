"""Bodies and answers of `/api/v1/auth` and the JWKS document."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from taskmesh.auth.v1 import auth_pb2
from taskmesh.common.v1 import common_pb2

from taskmesh_gateway.schemas.common import RequestBody, UtcDatetime, datetime_from_proto

_EMAIL_MAX_LENGTH = 254
_EMAIL_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")
_EMAIL_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _check_email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    labels = domain.split(".")
    valid = (
        at == "@"
        and len(value) <= _EMAIL_MAX_LENGTH
        and _EMAIL_LOCAL_PART.fullmatch(local) is not None
        and not local.startswith(".")
        and not local.endswith(".")
        and ".." not in local
        and len(labels) >= 2
        and all(_EMAIL_DOMAIN_LABEL.fullmatch(label) for label in labels)
    )
    if not valid:
        raise ValueError("not a valid email address")
    return value


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True),
    AfterValidator(_check_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": _EMAIL_MAX_LENGTH}),
]
"""An email address (`local@domain.tld`); the auth service compares it case-insensitively."""

Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
"""A new password: 8-128 characters."""

PresentedPassword = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
"""A password being checked; its length says nothing, so only absurd sizes are refused."""

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
"""A display name: 1-100 characters after trimming."""

OpaqueToken = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class Role(StrEnum):
    """A user's role."""

    user = "user"
    admin = "admin"


_ROLE_FROM_PROTO: dict[common_pb2.Role, Role] = {
    common_pb2.ROLE_USER: Role.user,
    common_pb2.ROLE_ADMIN: Role.admin,
}
_ROLE_TO_PROTO: dict[Role, common_pb2.Role] = {
    role: value for value, role in _ROLE_FROM_PROTO.items()
}


def role_from_proto(value: common_pb2.Role) -> Role:
    """Convert a proto Role; an unspecified role is the least privileged."""
    return _ROLE_FROM_PROTO.get(value, Role.user)


def role_to_proto(role: Role) -> common_pb2.Role:
    """Convert a Role to its proto value."""
    return _ROLE_TO_PROTO[role]


class RegisterRequest(RequestBody):
    """A new account."""

    email: Email
    password: Password
    name: Name

    @model_validator(mode="after")
    def _password_is_not_the_email(self) -> Self:
        if self.password.casefold() == self.email.casefold():
            raise ValueError("password must not equal the email")
        return self

    def to_proto(self) -> auth_pb2.RegisterRequest:
        """The RegisterRequest RPC message."""
        return auth_pb2.RegisterRequest(email=self.email, password=self.password, name=self.name)


class LoginRequest(RequestBody):
    """Credentials of an existing account."""

    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
    password: PresentedPassword


class RefreshRequest(RequestBody):
    """A refresh token to rotate; may be omitted when it travels in the refresh cookie."""

    refresh_token: OpaqueToken | None = None


class LogoutRequest(RequestBody):
    """The session to end; may be omitted (the cookie's, else the access token's session)."""

    refresh_token: OpaqueToken | None = None


class ChangePasswordRequest(RequestBody):
    """The current password and its replacement."""

    current_password: PresentedPassword
    new_password: Password


class ForgotPasswordRequest(RequestBody):
    """Where to send a reset token."""

    email: Email


class ResetPasswordRequest(RequestBody):
    """A reset token and the new password."""

    token: OpaqueToken
    new_password: Password


class User(BaseModel):
    """An account's identity."""

    id: str
    email: str
    role: Role
    active: bool
    created_at: UtcDatetime


class Tokens(BaseModel):
    """An access/refresh token pair; `refresh_token` is left out when it is set as a cookie."""

    access_token: str
    refresh_token: str | None = Field(
        default=None, description="Absent with ?refresh_cookie=true (sent as a cookie instead)"
    )
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Lifetime of the access token in seconds")


class RegisterResponse(Tokens):
    """The new account and its first token pair."""

    user: User


class Jwk(BaseModel):
    """A public JSON Web Key (RFC 7517)."""

    kid: str
    kty: str
    alg: str
    use: str = "sig"
    crv: str | None = None
    x: str | None = None
    n: str | None = None
    e: str | None = None


class Jwks(BaseModel):
    """A JSON Web Key Set: the keys that verify access tokens."""

    keys: list[Jwk]


def user_from_proto(user: auth_pb2.User) -> User:
    """Convert a proto User."""
    return User(
        id=user.id,
        email=user.email,
        role=role_from_proto(user.role),
        active=user.active,
        created_at=datetime_from_proto(user.created_at),
    )


def tokens_from_proto(tokens: auth_pb2.Tokens) -> Tokens:
    """Convert a proto token pair."""
    return Tokens(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token or None,
        expires_in=tokens.expires_in,
    )


def register_response_from_proto(response: auth_pb2.RegisterResponse) -> RegisterResponse:
    """Convert the RegisterResponse RPC answer."""
    tokens = tokens_from_proto(response.tokens)
    return RegisterResponse(user=user_from_proto(response.user), **tokens.model_dump())


def jwks_from_proto(jwks: auth_pb2.Jwks) -> Jwks:
    """Convert a proto key set; fields unused by a key type are left out."""
    return Jwks(
        keys=[
            Jwk(
                kid=key.kid,
                kty=key.kty,
                alg=key.alg,
                use=key.use or "sig",
                crv=key.crv or None,
                x=key.x or None,
                n=key.n or None,
                e=key.e or None,
            )
            for key in jwks.keys
        ]
    )
