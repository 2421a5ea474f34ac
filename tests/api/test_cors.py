"""One origin policy for REST, static files and /ws (`BUGSTREAM_ALLOWED_ORIGINS`, issue 13.1),
over real sockets: preflights answered for allowed origins and refused for others, the CORS
headers on answers (errors included) and on /static/ files, localhost in development only,
and the older `BUGSTREAM_WS_ALLOWED_ORIGINS` as an alias."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from bugstream.domain.enums import Role
from tests.support.factory import Factory
from tests.support.live import LiveServer, live_server

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

APP = "https://app.example.com"
EVIL = "https://evil.example.com"


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def ws_status(live: LiveServer, token: str, origin: str) -> int:
    try:
        ws = await websockets.connect(
            f"{live.ws_url}?token={token}", origin=Origin(origin), open_timeout=5
        )
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def check_policy(live: LiveServer, token: str, allowed: str) -> None:
    async with httpx.AsyncClient(base_url=live.http_url) as http:
        answer = await http.options("/api/v1/projects", headers=preflight(allowed))
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == allowed
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in answer.headers  # tokens, not cookies

        refused = await http.options("/api/v1/projects", headers=preflight(EVIL))
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers

        auth = {"Authorization": f"Bearer {token}", "Origin": allowed}
        me = await http.get("/api/v1/users/me", headers=auth)
        assert me.status_code == 200
        assert me.headers["access-control-allow-origin"] == allowed
        # An error answer carries the headers too, or the page cannot read why it failed.
        missing = await http.get("/api/v1/users/me", headers={"Origin": allowed})
        assert missing.status_code == 401
        assert missing.headers["access-control-allow-origin"] == allowed
        assert "retry-after" in missing.headers["access-control-expose-headers"].lower()

        module = await http.get("/static/bugstream.js", headers={"Origin": allowed})
        assert module.status_code == 200
        assert module.headers["access-control-allow-origin"] == allowed

        other = await http.get("/static/bugstream.js", headers={"Origin": EVIL})
        assert "access-control-allow-origin" not in other.headers

    assert await ws_status(live, token, allowed) == 101
    assert await ws_status(live, token, EVIL) == 403


async def test_the_allowed_origins_setting_governs_rest_static_and_ws(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, allowed_origins=[APP]) as live:
        await check_policy(live, live.token_for(dev), APP)


async def test_the_older_ws_setting_is_an_alias(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, ws_allowed_origins=[APP]) as live:
        await check_policy(live, live.token_for(dev), APP)


async def test_pages_on_this_machine_are_allowed_in_development(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        await check_policy(live, live.token_for(dev), "http://localhost:5173")


async def test_production_allows_only_the_listed_origins(factory: Factory) -> None:
    settings: dict[str, Any] = {
        "env": "production",
        "behind_tls_proxy": True,
        "allowed_origins": [APP],
    }
    async with live_server(factory.ctx, **settings) as live:
        async with httpx.AsyncClient(base_url=live.http_url) as http:
            listed = await http.options("/api/v1/projects", headers=preflight(APP))
            local = await http.options(
                "/api/v1/projects", headers=preflight("http://localhost:5173")
            )
        assert listed.status_code == 200
        assert local.status_code == 400
        assert "access-control-allow-origin" not in local.headers


async def test_a_star_allows_any_origin(factory: Factory) -> None:
    async with live_server(factory.ctx, allowed_origins=["*"]) as live:
        async with httpx.AsyncClient(base_url=live.http_url) as http:
            answer = await http.options("/api/v1/projects", headers=preflight(EVIL))
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] in ("*", EVIL)
