"""Shared fixtures: real databases (SQLite and PostgreSQL), a service context, factories.

PostgreSQL suites run when `BUGSTREAM_TEST_POSTGRES_URL` is set (`.ci/run` sets it), e.g.
`postgresql+asyncpg://postgres@127.0.0.1:5432/test`; a fresh database is created from it for
the session and dropped afterwards. Without it they skip and say so.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bugstream.services.context import ServiceContext
from bugstream.store import migrate
from bugstream.store.database import Database, create_engine
from bugstream.store.tables import metadata
from tests.support.clock import FakeClock
from tests.support.factory import Factory
from tests.support.hangs import start_timer

if TYPE_CHECKING:
    from tests.support.redis import ThrowawayRedis

POSTGRES_ENV = "BUGSTREAM_TEST_POSTGRES_URL"
REQUIRE_SERVICES_ENV = "BUGSTREAM_REQUIRE_SERVICES"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip a suite whose service is not configured; in CI (BUGSTREAM_REQUIRE_SERVICES=1) a
    missing service is a failure, never a silent skip."""
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool:
    """A test over its time limit prints its pending asyncio tasks and ends the run
    (tests/support/hangs.py)."""
    if settings.timeout <= 0:
        return False  # no limit for this test: let pytest-timeout do nothing
    start_timer(item, settings)
    return True


def run_blocking(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion from sync code, even inside a running event loop
    (session fixtures are first requested from async tests)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


class FastPasswords:
    """argon2 with the cheapest parameters: real hashing, without 80 ms per user in tests."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

    async def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    async def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except Exception:
            return False


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")

    async def build() -> None:
        await migrate.upgrade(engine)
        await engine.dispose()

    run_blocking(build())
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        skip_or_fail(f"PostgreSQL suites need {POSTGRES_ENV}=postgresql+asyncpg://user@host/db")
    name = f"bugstream_test_{uuid.uuid4().hex[:10]}"
    admin_url = make_url(base)
    url = admin_url.set(database=name).render_as_string(hide_password=False)

    async def create() -> None:
        engine = create_engine(base)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()
        engine = create_engine(url)
        await migrate.upgrade(engine)
        await engine.dispose()

    async def drop() -> None:
        engine = create_engine(base)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()

    run_blocking(create())
    yield url
    run_blocking(drop())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Parametrizes a test over both databases (the store contract)."""
    return str(request.param)


@pytest.fixture
async def db(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Database]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "bugstream.db"
        shutil.copy(template, path)
        database = Database.from_url(f"sqlite:///{path}")
    else:
        url: str = request.getfixturevalue("postgres_url")
        database = Database.from_url(url)
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))


@pytest.fixture
def ctx(db: Database, clock: FakeClock) -> ServiceContext:
    return ServiceContext(
        db=db, passwords=FastPasswords(), clock=clock, reminder_age=timedelta(days=3)
    )


@pytest.fixture
def factory(ctx: ServiceContext) -> Factory:
    return Factory(ctx)


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[ThrowawayRedis]:
    """A redis-server of the test's own, on a free port (to kill and restart at will)."""
    from tests.support.redis import ThrowawayRedis  # it imports this module

    server = ThrowawayRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.kill()
