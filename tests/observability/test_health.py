"""`/healthz` says the process is alive; `/readyz` says whether the database and the bus answer,
and goes back to ready once they do again."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bugstream.services.context import ServiceContext
from bugstream.store.database import Database, create_engine
from tests.conftest import FastPasswords
from tests.support.cluster import fresh_database
from tests.support.factory import Factory
from tests.support.live import live_server
from tests.support.redis import ThrowawayRedis


async def probe(base_url: str, path: str) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as http:
        response = await http.get(path)
    body: dict[str, object] = response.json()
    return response.status_code, body


async def test_ready_with_the_embedded_defaults(factory: Factory) -> None:
    async with live_server(factory.ctx) as live:
        assert await probe(live.http_url, "/healthz") == (200, {"status": "ok"})
        assert await probe(live.http_url, "/readyz") == (
            200,
            {"status": "ready", "checks": {"database": "ok", "bus": "ok"}},
        )


@pytest.mark.redis
async def test_not_ready_while_redis_is_down_and_ready_again_after(
    factory: Factory, redis_server: ThrowawayRedis
) -> None:
    async with live_server(factory.ctx, bus_url=redis_server.url) as live:
        assert (await probe(live.http_url, "/readyz"))[0] == 200
        redis_server.kill()
        status, body = await probe(live.http_url, "/readyz")
        assert status == 503
        assert body["status"] == "not ready"
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert checks["database"] == "ok"
        assert str(checks["bus"]).startswith("error")
        # Alive all the same: an orchestrator must not restart it for a dependency's outage.
        assert (await probe(live.http_url, "/healthz"))[0] == 200
        await redis_server.start()
        assert (await probe(live.http_url, "/readyz"))[0] == 200


@pytest.mark.postgres
async def test_not_ready_while_the_database_refuses_connections() -> None:
    async with fresh_database() as url:
        name = make_url(url).database
        admin = create_engine(url.rsplit("/", 1)[0] + "/postgres")
        ctx = ServiceContext(db=Database.from_url(url), passwords=FastPasswords())

        async def allow(allowed: bool) -> None:
            async with admin.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(
                    text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
                )
                if not allowed:
                    await conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :name AND pid <> pg_backend_pid()"
                        ),
                        {"name": name},
                    )

        try:
            async with live_server(ctx) as live:
                assert (await probe(live.http_url, "/readyz"))[0] == 200
                await allow(False)
                status, body = await probe(live.http_url, "/readyz")
                assert status == 503
                checks = body["checks"]
                assert isinstance(checks, dict)
                assert str(checks["database"]).startswith("error")
                await allow(True)
                assert (await probe(live.http_url, "/readyz"))[0] == 200
        finally:
            await allow(True)
            await ctx.db.dispose()
            await admin.dispose()
