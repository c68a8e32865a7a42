"""`/api/v1/auth`: accounts, sessions and tokens; and the JWKS document."""

from __future__ import annotations

from typing import Annotated, TypeVar

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
from taskmesh.auth.v1 import auth_pb2

from taskmesh_gateway.dependencies import Clients, CurrentUser
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
from taskmesh_gateway.schemas.common import timestamp_to_proto
from taskmesh_gateway.schemas.problems import problem_responses

PREFIX = "/api/v1/auth"
REFRESH_COOKIE = "refresh_token"
REFRESH_COOKIE_MAX_AGE_S = 30 * 24 * 3600
CSRF_HEADER_VALUE = "taskmesh"
JWKS_MAX_AGE_S = 300

TokensT = TypeVar("TokensT", bound=Tokens)

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
    """Move the refresh token from the answer's body into an HttpOnly cookie."""
    if tokens.refresh_token is not None:
        response.set_cookie(
            REFRESH_COOKIE,
            tokens.refresh_token,
            max_age=REFRESH_COOKIE_MAX_AGE_S,
            path=PREFIX,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
    return tokens.model_copy(update={"refresh_token": None})


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
    request: Request,
    response: Response,
    refresh_cookie: RefreshCookieFlag = False,
) -> Tokens:
    """Sign in with email and password."""
    reply = await clients.auth.Login(
        auth_pb2.LoginRequest(email=body.email, password=body.password)
    )
    tokens = tokens_from_proto(reply)
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
) -> Tokens:
    """Sign in with the OAuth2 password flow (form fields `username`, `password`)."""
    reply = await clients.auth.Login(
        auth_pb2.LoginRequest(email=form.username.strip(), password=form.password)
    )
    return tokens_from_proto(reply)


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
    response: Response,
    cookie: RefreshCookie = None,
    x_requested_with: RequestedWith = None,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> None:
    """End the session: the access token and the session's refresh token stop working."""
    refresh_token, from_cookie = _presented_refresh_token(body, cookie, x_requested_with)
    await clients.auth.Logout(
        auth_pb2.LogoutRequest(
            refresh_token=refresh_token or "",
            access_token_id=caller.token_id,
            access_token_expires_at=timestamp_to_proto(caller.token_expires_at),
        )
    )
    if from_cookie:
        response.delete_cookie(REFRESH_COOKIE, path=PREFIX, httponly=True, samesite="strict")


@router.get("/me", responses=problem_responses(401))
async def read_me(caller: CurrentUser, clients: Clients) -> User:
    """Return the signed-in user."""
    return user_from_proto(await clients.auth.GetMe(auth_pb2.GetMeRequest()))


@router.post(
    "/change-password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 422),
)
async def change_password(
    body: ChangePasswordRequest, caller: CurrentUser, clients: Clients
) -> None:
    """Change the password; every other session of the user is revoked."""
    await clients.auth.ChangePassword(
        auth_pb2.ChangePasswordRequest(
            current_password=body.current_password, new_password=body.new_password
        )
    )


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
    """Set a new password with a reset token; every session of the user is revoked."""
    await clients.auth.ResetPassword(
        auth_pb2.ResetPasswordRequest(token=body.token, new_password=body.new_password)
    )


@jwks_router.get(
    "/.well-known/jwks.json", response_model_exclude_none=True, responses=problem_responses(503)
)
async def read_jwks(clients: Clients, response: Response) -> Jwks:
    """Return the public keys that verify access tokens."""
    jwks = jwks_from_proto(await clients.auth.GetJwks(auth_pb2.GetJwksRequest()))
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_S}"
    return jwks
