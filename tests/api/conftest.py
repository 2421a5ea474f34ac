"""The REST API over ASGI: a real app (lifespan included) on the `ctx` of each backend.

`api` gives an `Api`: an httpx client on the app, and helpers to log in users made by the
`factory` (password `tests.support.factory.PASSWORD`) through `POST /api/v1/auth/token`.
`running_api(ctx, **settings)` builds another instance with other settings (e.g. a small
`max_request_bytes`). `snapshot(ctx)` is the state of the database that invalid requests must
leave untouched: the row count of every table and the last outbox id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from bugstream.app import create_app
from bugstream.auth.tokens import TokenConfig
from bugstream.domain.models import User
from bugstream.services.context import ServiceContext
from bugstream.settings import Settings
from bugstream.store.tables import metadata, outbox
from tests.support.factory import PASSWORD

TEST_SECRET = "api-tests-secret-0123456789abcdef0123456789"  # 32+ bytes, as HS256 requires


def api_settings(**overrides: Any) -> Settings:
    """Settings for tests: no migrations (the fixtures migrate), no bootstrap, no scheduler."""
    values: dict[str, Any] = {
        "jwt_secret": TEST_SECRET,
        "auto_migrate": False,
        "bootstrap_admin": False,
        "reminders_enabled": False,
        **overrides,
    }
    return Settings(**values)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    ctx: ServiceContext

    @property
    def token_config(self) -> TokenConfig:
        config: TokenConfig = self.app.state.token_config
        return config

    async def token(self, user: User | str, password: str = PASSWORD) -> str:
        """Log in through the API and return the access token."""
        username = user if isinstance(user, str) else user.username
        response = await self.client.post(
            "/api/v1/auth/token", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def login(self, user: User | str, password: str = PASSWORD) -> dict[str, str]:
        """Log in through the API and return the `Authorization` header for the token."""
        return bearer(await self.token(user, password))


@asynccontextmanager
async def running_api(ctx: ServiceContext, **settings: Any) -> AsyncIterator[Api]:
    """An app on `ctx`, its lifespan running, and a client on it."""
    app = create_app(api_settings(**settings), ctx=ctx)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(app=app, client=client, ctx=ctx)


@pytest.fixture
async def api(ctx: ServiceContext) -> AsyncIterator[Api]:
    async with running_api(ctx) as running:
        yield running


def error_payload(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert `response` is the error `code` with `status` in the one error shape; its payload."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error", body
    assert set(body) == {"type", "payload"}, body
    payload: dict[str, Any] = body["payload"]
    assert payload["code"] == code, body
    assert isinstance(payload["message"], str) and payload["message"], body
    return payload


Snapshot = dict[str, int]


async def snapshot(ctx: ServiceContext) -> Snapshot:
    """Row counts of every table, and the highest outbox id (0 when empty)."""
    state: Snapshot = {}
    async with ctx.db.read() as repos:
        for table in metadata.sorted_tables:
            count = (await repos.conn.execute(select(func.count()).select_from(table))).scalar()
            state[table.name] = int(count or 0)
        last = (await repos.conn.execute(select(func.max(outbox.c.id)))).scalar()
        state["outbox.max_id"] = int(last or 0)
    return state
