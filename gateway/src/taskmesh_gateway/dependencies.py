"""Dependencies of the API routes: settings, the service clients, caches and the caller.

Route signatures read like sentences: `async def get_task(task_id: str, clients: Clients,
caller: CurrentUser)`.

`CurrentUser` is the caller that admission (`taskmesh_gateway.admission`) verified and found
unrevoked before routing: 401 (`WWW-Authenticate: Bearer`, with `error="invalid_token"` when a
token was presented but refused) otherwise. `AdminUser` is `CurrentUser` narrowed to admins
(403 for anyone else).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from taskmesh_chassis.identity import Caller

from taskmesh_gateway.admission import Admission
from taskmesh_gateway.clients import ServiceClients
from taskmesh_gateway.login_guard import LoginGuard
from taskmesh_gateway.me_cache import MeCache
from taskmesh_gateway.settings import GatewaySettings
from taskmesh_gateway.task_list_cache import TaskListCache

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a URL, not a secret

bearer_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
"""Documents the bearer scheme in OpenAPI; the token itself is verified by admission."""


def get_settings(request: Request) -> GatewaySettings:
    """The settings the application was built with."""
    settings: GatewaySettings = request.app.state.settings
    return settings


Settings = Annotated[GatewaySettings, Depends(get_settings)]


def get_clients(request: Request) -> ServiceClients:
    """The gRPC stubs built at start-up."""
    clients: ServiceClients = request.app.state.clients
    return clients


Clients = Annotated[ServiceClients, Depends(get_clients)]


def get_login_guard(request: Request) -> LoginGuard:
    """The login brute-force guard built at start-up."""
    guard: LoginGuard = request.app.state.login_guard
    return guard


Guard = Annotated[LoginGuard, Depends(get_login_guard)]


def get_me_cache(request: Request) -> MeCache:
    """The `/auth/me` cache built at start-up."""
    cache: MeCache = request.app.state.me_cache
    return cache


MeCacheDep = Annotated[MeCache, Depends(get_me_cache)]


def get_task_list_cache(request: Request) -> TaskListCache:
    """The `GET /api/v1/tasks` cache built at start-up."""
    cache: TaskListCache = request.app.state.task_list_cache
    return cache


TaskListCacheDep = Annotated[TaskListCache, Depends(get_task_list_cache)]


def _unauthorized(detail: str, challenge: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": challenge},
    )


async def get_current_user(
    request: Request, _token: Annotated[str | None, Depends(bearer_scheme)]
) -> Caller:
    """The verified, unrevoked caller behind the bearer token; 401 without one."""
    admission: Admission | None = request.scope.get("state", {}).get("admission")
    if admission is None:
        raise RuntimeError(f"{request.url.path} needs a caller but is not behind admission")
    if admission.caller is not None:
        return admission.caller
    raise _unauthorized(*authentication_challenge(admission))


def authentication_challenge(admission: Admission) -> tuple[str, str]:
    """The 401's detail and `WWW-Authenticate` value for a request that brought no caller."""
    if admission.rejection is None:
        return "A bearer access token is required.", "Bearer"
    challenge = f'Bearer error="invalid_token", error_description="{admission.rejection}"'
    return f"{admission.rejection[0].upper()}{admission.rejection[1:]}.", challenge


CurrentUser = Annotated[Caller, Depends(get_current_user)]


async def get_admin_user(caller: CurrentUser) -> Caller:
    """The caller, who must be an admin (403 otherwise)."""
    if not caller.is_admin:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="This route is for admins only"
        )
    return caller


AdminUser = Annotated[Caller, Depends(get_admin_user)]
