"""Dependencies of the API routes: settings, the service clients and the caller's identity.

Route signatures read like sentences: `async def get_task(task_id: str, clients: Clients,
caller: CurrentUser)`.

Bearer-token verification is not built yet. Until it is, `CurrentUser` answers a request
without a bearer token with 401 (`WWW-Authenticate: Bearer`) and a request with one with
501: no authenticated route pretends to work. `AdminUser` is `CurrentUser` narrowed to
admins (403 for anyone else).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from taskmesh_gateway.clients import ServiceClients
from taskmesh_gateway.schemas.auth import Role
from taskmesh_gateway.settings import GatewaySettings

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a URL, not a secret

bearer_scheme = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


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


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated user a request acts for, as its access token says."""

    user_id: str
    role: Role
    token_id: str
    token_expires_at: datetime


async def get_current_user(token: Annotated[str | None, Depends(bearer_scheme)]) -> Caller:
    """The caller behind the bearer token: 401 without one; 501 while verification is missing."""
    if token is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="A bearer access token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    raise HTTPException(
        status_code=status.HTTP_501_NOT_IMPLEMENTED,
        detail="bearer token verification is not implemented yet",
    )


CurrentUser = Annotated[Caller, Depends(get_current_user)]


async def get_admin_user(caller: CurrentUser) -> Caller:
    """The caller, who must be an admin (403 otherwise)."""
    if caller.role is not Role.admin:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN, detail="This route is for admins only"
        )
    return caller


AdminUser = Annotated[Caller, Depends(get_admin_user)]
