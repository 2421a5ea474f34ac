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
from bugstream.api.routes.events import events_router


def api_router(*, history_max_limit: int = 1000) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    for module in (auth, users, projects, bugs, comments, notifications, admin, stream):
        router.include_router(module.router)
    router.include_router(events_router(history_max_limit))
    return router
