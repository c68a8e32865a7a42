"""`/api/v1/auth`: accounts, sessions and tokens; and the JWKS document."""

from __future__ import annotations

from typing import Annotated, TypeVar

import grpc
import structlog
from fastapi import (
    APIRouter,
    Body,
    Cookie,
    Depends,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordRequestForm
from google.protobuf.timestamp_pb2 import Timestamp
from taskmesh.auth.v1 import auth_pb2
from taskmesh_chassis.errors import field_errors_from_metadata

from taskmesh_gateway.dependencies import Clients, CurrentUser, Guard, MeCacheDep
from taskmesh_gateway.login_guard import LoginLocked
from taskmesh_gateway.metrics import count_cache_lookup
from taskmesh_gateway.schemas.auth import (
    ChangePasswordRequest,
    ForgotPasswordRequest,
    Jwks,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    RegisterResponse,
    ResetPasswordRequest,
    Tokens,
    User,
    jwks_from_proto,
    register_response_from_proto,
    tokens_from_proto,
    user_from_proto,
)
from taskmesh_gateway.schemas.problems import problem_responses

PREFIX = "/api/v1/auth"
REFRESH_COOKIE = "refresh_token"
REFRESH_COOKIE_MAX_AGE_S = 30 * 24 * 3600
CSRF_HEADER_VALUE = "taskmesh"
JWKS_MAX_AGE_S = 300

TokensT = TypeVar("TokensT", bound=Tokens)

log = structlog.get_logger(__name__)

router = APIRouter(prefix=PREFIX, tags=["auth"])
jwks_router = APIRouter(tags=["auth"])

RefreshCookieFlag = Annotated[
    bool,
    Query(description="Set the refresh token as an HttpOnly cookie and leave it out of the body"),
]
RefreshCookie = Annotated[str | None, Cookie(alias=REFRESH_COOKIE, include_in_schema=False)]
RequestedWith = Annotated[
    str | None,
    Header(description="Must be `taskmesh` when the refresh token comes from the cookie"),
]


def _keep_refresh_token_in_cookie(tokens: TokensT, request: Request, response: Response) -> TokensT:
    """Move the refresh token from the answer's body into an HttpOnly cookie.

    `Secure` behind TLS: when TRUSTED_TLS says TLS terminates in front of the gateway, or the
    trusted proxy says the request came over https.
    """
    if tokens.refresh_token is not None:
        settings = request.app.state.settings
        response.set_cookie(
            REFRESH_COOKIE,
            tokens.refresh_token,
            max_age=REFRESH_COOKIE_MAX_AGE_S,
            path=PREFIX,
            secure=settings.trusted_tls or request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
    return tokens.model_copy(update={"refresh_token": None})


async def _log_in(email: str, password: str, clients: Clients, guard: Guard) -> Tokens:
    """Log in through the brute-force guard: 429 while the email is locked out."""
    try:
        attempt = await guard.begin(email)
    except LoginLocked as locked:
        log.info("login.locked_out", retry_after_s=locked.retry_after_s)
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail="Too many failed logins for this email; retry after the Retry-After delay.",
            headers={"Retry-After": str(locked.retry_after_s)},
        ) from None
    try:
        reply = await clients.auth.Login(auth_pb2.LoginRequest(email=email, password=password))
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.UNAUTHENTICATED:
            await guard.discount(attempt)
        raise
    await guard.discount(attempt)
    return tokens_from_proto(reply)


def _presented_refresh_token(
    body: RefreshRequest | LogoutRequest | None,
    cookie: str | None,
    requested_with: str | None,
) -> tuple[str | None, bool]:
    """The body's refresh token, else the cookie's (CSRF-guarded), and if it is the cookie's."""
    if body is not None and body.refresh_token is not None:
        return body.refresh_token, False
    if cookie is None:
        return None, False
    if requested_with != CSRF_HEADER_VALUE:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=f"X-Requested-With: {CSRF_HEADER_VALUE} is required with the refresh cookie",
        )
    return cookie, True


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model_exclude_none=True,
    responses=problem_responses(409, 422),
)
async def register(
    body: RegisterRequest,
    clients: Clients,
    request: Request,
    response: Response,
    refresh_cookie: RefreshCookieFlag = False,
) -> RegisterResponse:
    """Create an account and sign in."""
    created = register_response_from_proto(await clients.auth.Register(body.to_proto()))
    if refresh_cookie:
        return _keep_refresh_token_in_cookie(created, request, response)
    return created


@router.post(
    "/login",
    response_model_exclude_none=True,
    responses=problem_responses(401, 403, 422, 429),
)
async def login(
    body: LoginRequest,
    clients: Clients,
    guard: Guard,
    request: Request,
    response: Response,
    refresh_cookie: RefreshCookieFlag = False,
) -> Tokens:
    """Sign in with email and password; 429 after too many failures for the email."""
    tokens = await _log_in(body.email, body.password, clients, guard)
    if refresh_cookie:
        return _keep_refresh_token_in_cookie(tokens, request, response)
    return tokens


@router.post(
    "/token",
    response_model_exclude_none=True,
    responses=problem_responses(401, 403, 422, 429),
)
async def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    clients: Clients,
    guard: Guard,
) -> Tokens:
    """Sign in with the OAuth2 password flow (form fields `username`, `password`)."""
    return await _log_in(form.username.strip(), form.password, clients, guard)


@router.post(
    "/refresh",
    response_model_exclude_none=True,
    responses=problem_responses(401, 403, 422),
)
async def refresh(
    clients: Clients,
    request: Request,
    response: Response,
    cookie: RefreshCookie = None,
    x_requested_with: RequestedWith = None,
    body: Annotated[RefreshRequest | None, Body()] = None,
    refresh_cookie: RefreshCookieFlag = False,
) -> Tokens:
    """Exchange a refresh token for a new token pair; the old refresh token stops working."""
    refresh_token, from_cookie = _presented_refresh_token(body, cookie, x_requested_with)
    if refresh_token is None:
        raise RequestValidationError(
            [
                {
                    "type": "missing",
                    "loc": ("body", "refresh_token"),
                    "msg": "A refresh token is required, in the body or the refresh cookie",
                    "input": None,
                }
            ]
        )
    reply = await clients.auth.Refresh(auth_pb2.RefreshRequest(refresh_token=refresh_token))
    tokens = tokens_from_proto(reply)
    if refresh_cookie or from_cookie:
        return _keep_refresh_token_in_cookie(tokens, request, response)
    return tokens


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 422),
)
async def logout(
    caller: CurrentUser,
    clients: Clients,
    me_cache: MeCacheDep,
    response: Response,
    cookie: RefreshCookie = None,
    x_requested_with: RequestedWith = None,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> None:
    """End the session: the access token and the session's refresh token stop working."""
    refresh_token, from_cookie = _presented_refresh_token(body, cookie, x_requested_with)
    expires_at = Timestamp()
    expires_at.FromNanoseconds(int(caller.expires_at * 1_000_000_000))
    await clients.auth.Logout(
        auth_pb2.LogoutRequest(
            refresh_token=refresh_token or "",
            access_token_id=caller.token_id,
            access_token_expires_at=expires_at,
        )
    )
    await me_cache.drop(caller.user_id)
    if from_cookie:
        response.delete_cookie(REFRESH_COOKIE, path=PREFIX, httponly=True, samesite="strict")


@router.get(
    "/me",
    response_model=User,
    responses={
        status.HTTP_200_OK: {
            "headers": {"X-Cache": {"description": "HIT or MISS", "schema": {"type": "string"}}}
        },
        **problem_responses(401),
    },
)
async def read_me(caller: CurrentUser, clients: Clients, me_cache: MeCacheDep) -> Response:
    """Return the signed-in user (cached per access token for 15 minutes)."""
    cached = await me_cache.get(caller)
    count_cache_lookup("me", hit=cached is not None)
    if cached is not None:
        return Response(cached, media_type="application/json", headers={"X-Cache": "HIT"})
    user = user_from_proto(await clients.auth.GetMe(auth_pb2.GetMeRequest()))
    body = user.model_dump_json().encode()
    await me_cache.put(caller, body)
    return Response(body, media_type="application/json", headers={"X-Cache": "MISS"})


@router.post(
    "/change-password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 422),
)
async def change_password(
    body: ChangePasswordRequest, caller: CurrentUser, clients: Clients, me_cache: MeCacheDep
) -> None:
    """Change the password; every other session of the user is revoked."""
    await clients.auth.ChangePassword(
        auth_pb2.ChangePasswordRequest(
            current_password=body.current_password, new_password=body.new_password
        )
    )
    await me_cache.drop(caller.user_id)


@router.post(
    "/forgot-password",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses={
        status.HTTP_202_ACCEPTED: {"description": "A reset email goes out if the account exists"},
        **problem_responses(422),
    },
)
async def forgot_password(body: ForgotPasswordRequest, clients: Clients) -> Response:
    """Email a single-use password reset token, if the account exists."""
    await clients.auth.ForgotPassword(auth_pb2.ForgotPasswordRequest(email=body.email))
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/reset-password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 422),
)
async def reset_password(body: ResetPasswordRequest, clients: Clients) -> None:
    """Set a new password with a reset token; every session of the user is revoked.

    A bad, used or expired token is 400 (the API's one exception to INVALID_ARGUMENT → 422);
    a new password the service refuses (field errors naming `new_password`) stays 422.
    """
    try:
        await clients.auth.ResetPassword(
            auth_pb2.ResetPasswordRequest(token=body.token, new_password=body.new_password)
        )
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT and not _names_new_password(error):
            raise HTTPException(
                status_code=status.HTTP_400_BAD_REQUEST,
                detail="The reset token is invalid, already used or expired.",
            ) from None
        raise


def _names_new_password(error: grpc.aio.AioRpcError) -> bool:
    field_errors = field_errors_from_metadata(error.trailing_metadata() or ())
    return any("new_password" in field_error.loc for field_error in field_errors)


@jwks_router.get(
    "/.well-known/jwks.json", response_model_exclude_none=True, responses=problem_responses(503)
)
async def read_jwks(clients: Clients, response: Response) -> Jwks:
    """Return the public keys that verify access tokens."""
    jwks = jwks_from_proto(await clients.auth.GetJwks(auth_pb2.GetJwksRequest()))
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_S}"
    return jwks
