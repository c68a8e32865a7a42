"""The REST routes of the public API, one router per resource (see shared/API.md)."""

from fastapi import APIRouter

from taskmesh_gateway.routers import analytics, auth, notifications, tasks, users

api_routers: list[APIRouter] = [
    auth.router,
    auth.jwks_router,
    users.router,
    tasks.router,
    notifications.router,
    analytics.router,
]

__all__ = ["api_routers"]
