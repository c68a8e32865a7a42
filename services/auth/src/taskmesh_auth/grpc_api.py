"""The gRPC edge of the auth service: protobuf messages in, use cases, messages out.

Domain errors raised below become their gRPC status in the chassis' error scope; the caller
is the one the chassis verified from the request's access token (taskmesh_chassis.identity).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.auth.v1 import auth_pb2, auth_pb2_grpc
from taskmesh.common.v1 import common_pb2
from taskmesh_chassis.errors import FieldError, InvalidArgument
from taskmesh_chassis.identity import require_caller

from taskmesh_auth.domain import Actor, Role, StandingChange, User, UserStatus
from taskmesh_auth.events import role_to_proto
from taskmesh_auth.service import AuthService, TokenPair
from taskmesh_auth.tokens import PublicJwk

SERVICE_NAME: str = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name

_ROLES_FROM_PROTO = {common_pb2.ROLE_USER: Role.USER, common_pb2.ROLE_ADMIN: Role.ADMIN}


def current_actor() -> Actor:
    """The verified caller of this RPC; Unauthenticated when there is none."""
    caller = require_caller()
    return Actor(
        user_id=caller.user_id,
        role=Role(caller.role),
        token_id=caller.token_id,
        token_expires_at=caller.expires_at,
        session_id=caller.session_id,
    )


def user_to_proto(user: User) -> auth_pb2.User:
    """The User message of an account."""
    created_at = Timestamp()
    created_at.FromDatetime(user.created_at)
    return auth_pb2.User(
        id=user.id,
        email=user.email,
        role=role_to_proto(user.role),
        active=user.active,
        created_at=created_at,
    )


def user_status_to_proto(status: UserStatus) -> auth_pb2.UserStatus:
    """The UserStatus message of an account's status."""
    return auth_pb2.UserStatus(user_id=status.user_id, exists=status.exists, active=status.active)


def tokens_to_proto(tokens: TokenPair) -> auth_pb2.Tokens:
    """The Tokens message of a token pair."""
    return auth_pb2.Tokens(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_type="bearer",  # noqa: S106 - the OAuth 2 token type, not a secret
        expires_in=tokens.expires_in,
    )


def jwk_to_proto(jwk: PublicJwk) -> auth_pb2.Jwk:
    """The Jwk message of a public key."""
    return auth_pb2.Jwk(kid=jwk.kid, kty=jwk.kty, alg=jwk.alg, use=jwk.use, crv=jwk.crv, x=jwk.x)


def standing_change_from_proto(request: auth_pb2.UpdateUserRequest) -> StandingChange:
    """The requested role/active change; InvalidArgument for an unspecified role."""
    role: Role | None = None
    if request.HasField("role"):
        role = _ROLES_FROM_PROTO.get(request.role)
        if role is None:
            raise InvalidArgument(
                "invalid role", [FieldError(("body", "role"), "must be user or admin")]
            )
    active = request.active if request.HasField("active") else None
    return StandingChange(role=role, active=active)


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    """Serves taskmesh.auth.v1.AuthService."""

    def __init__(self, service: AuthService) -> None:
        self._service = service

    async def Register(
        self, request: auth_pb2.RegisterRequest, context: Any
    ) -> auth_pb2.RegisterResponse:
        """Create an account and open its first session."""
        user, tokens = await self._service.register(request.email, request.password, request.name)
        return auth_pb2.RegisterResponse(user=user_to_proto(user), tokens=tokens_to_proto(tokens))

    async def Login(self, request: auth_pb2.LoginRequest, context: Any) -> auth_pb2.Tokens:
        """Open a session for an email and password."""
        return tokens_to_proto(await self._service.login(request.email, request.password))

    async def Refresh(self, request: auth_pb2.RefreshRequest, context: Any) -> auth_pb2.Tokens:
        """Rotate a refresh token into a new token pair."""
        return tokens_to_proto(await self._service.refresh(request.refresh_token))

    async def Logout(self, request: auth_pb2.LogoutRequest, context: Any) -> Empty:
        """End a session of the caller and revoke the presented access token."""
        # The token id and expiry come from the verified token, not from the message fields.
        await self._service.logout(current_actor(), request.refresh_token or None)
        return Empty()

    async def GetMe(self, request: auth_pb2.GetMeRequest, context: Any) -> auth_pb2.User:
        """Return the calling user."""
        return user_to_proto(await self._service.get_me(current_actor()))

    async def GetUser(self, request: auth_pb2.GetUserRequest, context: Any) -> auth_pb2.User:
        """Return an account by id (admins; anyone for themself)."""
        return user_to_proto(await self._service.get_user(current_actor(), request.user_id))

    async def ChangePassword(self, request: auth_pb2.ChangePasswordRequest, context: Any) -> Empty:
        """Change the caller's password and revoke their other sessions."""
        await self._service.change_password(
            current_actor(), request.current_password, request.new_password
        )
        return Empty()

    async def ForgotPassword(self, request: auth_pb2.ForgotPasswordRequest, context: Any) -> Empty:
        """Issue a reset token (in the background) if the account exists; always succeeds."""
        await self._service.forgot_password(request.email)
        return Empty()

    async def ResetPassword(self, request: auth_pb2.ResetPasswordRequest, context: Any) -> Empty:
        """Set a new password from a reset token and revoke every session of the user."""
        await self._service.reset_password(request.token, request.new_password)
        return Empty()

    async def GetJwks(self, request: auth_pb2.GetJwksRequest, context: Any) -> auth_pb2.Jwks:
        """Return the public keys that verify access tokens."""
        return auth_pb2.Jwks(keys=[jwk_to_proto(jwk) for jwk in self._service.jwks()])

    async def UpdateUser(self, request: auth_pb2.UpdateUserRequest, context: Any) -> auth_pb2.User:
        """Change an account's role or active flag (admins)."""
        change = standing_change_from_proto(request)
        return user_to_proto(
            await self._service.update_user(current_actor(), request.user_id, change)
        )

    async def DeleteUser(self, request: auth_pb2.DeleteUserRequest, context: Any) -> Empty:
        """Delete an account (admins, or its owner) and revoke its access at once."""
        await self._service.delete_user(current_actor(), request.user_id)
        return Empty()

    async def GetUserStatus(
        self, request: auth_pb2.GetUserStatusRequest, context: Any
    ) -> auth_pb2.UserStatus:
        """Tell whether an account exists and is active (any authenticated caller)."""
        status = await self._service.get_user_status(current_actor(), request.user_id)
        return user_status_to_proto(status)
