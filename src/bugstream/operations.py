"""Operational endpoints: `/metrics` (Prometheus), `/healthz` (alive), `/readyz` (ready).

They live in the composition root because they read every part: the database, the bus, the
gateway and the relay.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text

from bugstream.api.errors import ORJSONResponse

#: A dependency that does not answer within this long counts as down (a probe must not hang).
READY_CHECK_TIMEOUT = 2.0

router = APIRouter(tags=["operations"], include_in_schema=False)


@router.get("/metrics", summary="Prometheus metrics of this instance")
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database and the event bus answer")
async def readyz(request: Request) -> Response:
    runtime: Any = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT):
            async with runtime.ctx.db.read() as repos:
                await repos.conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        if runtime.bus is None:
            raise RuntimeError("not started")
        async with asyncio.timeout(READY_CHECK_TIMEOUT):
            await runtime.bus.last_event_id()
        checks["bus"] = "ok"
    except Exception as exc:
        checks["bus"] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return ORJSONResponse(body, status_code=200 if ready else 503)
