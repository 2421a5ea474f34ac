"""The `/api/v1` router with every resource."""

from __future__ import annotations

from fastapi import APIRouter

from bugstream.api.routes import (
    admin,
    auth,
    bugs,
    comments,
    notifications,
    projects,
    stream,
    users,
)


def api_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    for module in (auth, users, projects, bugs, comments, notifications, admin, stream):
        router.include_router(module.router)
    return router
