"""SQLite on the event loop (store/sqlite_inline.py): statements run inline, and nothing ever
makes the loop wait for a lock: one write transaction at a time per process (the writer lane),
another process's write lock waited for with asyncio sleeps."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from bugstream.domain.models import ProjectCreate
from bugstream.services import projects
from bugstream.services.context import Actor, ServiceContext
from bugstream.store import database as database_module
from bugstream.store.database import Database
from bugstream.store.outbox import latest_event_id, read_events_after
from bugstream.store.sqlite_inline import InlineEngine
from tests.conftest import FastPasswords
from tests.support.factory import Factory


@pytest.fixture
def sqlite_path(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "bugstream.db"
    shutil.copy(sqlite_template, path)
    return path


def hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    """Another program writing: holds SQLite's write lock for `seconds`."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO projects (name, description, created_at, updated_at) "
        "VALUES ('outside', '', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
    )
    locked.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


@asynccontextmanager
async def another_program_writing(
    path: Path, seconds: float
) -> AsyncIterator[tuple[Database, ServiceContext, Actor, int]]:
    """Our database, context and an admin, while another program holds the write lock for
    `seconds`; with the newest event id from before."""
    db = Database.from_url(f"sqlite:///{path}")
    ctx = ServiceContext(db=db, passwords=FastPasswords())
    admin = await admin_of(ctx)
    locked = threading.Event()
    other = threading.Thread(target=hold_write_lock, args=(path, seconds, locked))
    other.start()
    try:
        await asyncio.to_thread(locked.wait)
        yield db, ctx, admin, await latest(db)
    finally:
        await asyncio.to_thread(other.join)
        await db.dispose()


async def admin_of(ctx: ServiceContext) -> Actor:
    return await Factory(ctx).admin()


async def latest(db: Database) -> int:
    async with db.read() as repos:
        return await latest_event_id(repos.conn)


async def ticks_while(work: asyncio.Future[object] | asyncio.Task[object]) -> int:
    """How many 10 ms sleeps the loop managed while `work` ran."""
    count = 0
    while not work.done():
        await asyncio.sleep(0.01)
        count += 1
    return count


@pytest.mark.parametrize("url", ["sqlite:///{}", "sqlite+aiosqlite:///{}"])
async def test_every_sqlite_url_runs_on_the_inline_engine(sqlite_path: Path, url: str) -> None:
    db = Database.from_url(url.format(sqlite_path))
    try:
        assert isinstance(db.engine, InlineEngine)
        async with db.read() as repos:
            assert (await repos.conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await db.dispose()


async def test_a_write_waits_for_another_programs_lock_without_stalling_the_loop(
    sqlite_path: Path,
) -> None:
    async with another_program_writing(sqlite_path, 0.6) as (db, ctx, admin, start):
        started = time.monotonic()
        write = asyncio.ensure_future(
            projects.create_project(ctx, admin, ProjectCreate(name="ours", description=""))
        )
        ticks = await ticks_while(write)
        waited = time.monotonic() - started
        result = write.result()
        assert result.value.name == "ours"
        assert waited >= 0.4, "it waited for the other program's commit"
        # SQLite's own busy wait would have blocked the loop for the whole 0.6 s.
        assert ticks >= 0.5 * waited / 0.01, (ticks, waited)
        async with db.read() as repos:
            events = await read_events_after(repos.conn, start)
        assert [e.payload["name"] for e in events if e.type == "project"] == ["ours"]


async def test_a_lock_held_past_the_timeout_fails_the_write_cleanly(
    sqlite_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "SQLITE_LOCK_TIMEOUT_SECONDS", 0.2)
    async with another_program_writing(sqlite_path, 1.0) as (db, ctx, admin, start):
        with pytest.raises(Exception, match="locked"):
            await projects.create_project(ctx, admin, ProjectCreate(name="late", description=""))
        # Nothing half-done: the next write (patient enough to outwait the other program)
        # goes through, and only it has an event.
        monkeypatch.setattr(database_module, "SQLITE_LOCK_TIMEOUT_SECONDS", 10.0)
        await projects.create_project(ctx, admin, ProjectCreate(name="next", description=""))
        async with db.read() as repos:
            events = await read_events_after(repos.conn, start)
        assert [e.payload["name"] for e in events if e.type == "project"] == ["next"]


async def test_write_transactions_in_one_process_take_turns(sqlite_path: Path) -> None:
    """One transaction awaits something else while it holds the lock; the other waits its
    turn in the writer lane (SQLite's busy wait on the loop would deadlock them)."""
    db = Database.from_url(f"sqlite:///{sqlite_path}")
    order: list[str] = []

    async def slow() -> None:
        async with db.transaction() as tx:
            order.append("slow begins")
            await tx.conn.execute(text("UPDATE users SET updated_at = updated_at"))
            await asyncio.sleep(0.2)  # e.g. hashing a password on a thread
            order.append("slow commits")

    async def quick() -> None:
        await asyncio.sleep(0.05)
        async with db.transaction():
            order.append("quick begins")

    try:
        async with asyncio.timeout(5):
            await asyncio.gather(slow(), quick())
        assert order == ["slow begins", "slow commits", "quick begins"]
    finally:
        await db.dispose()


async def test_more_readers_than_the_pool_wait_their_turn(sqlite_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{sqlite_path}", pool_size=2, max_overflow=1)

    async def reader() -> int:
        async with db.read() as repos:
            await asyncio.sleep(0.02)  # holds its connection across an await
            return int((await repos.conn.execute(text("SELECT 1"))).scalar_one())

    try:
        async with asyncio.timeout(5):
            assert sum(await asyncio.gather(*(reader() for _ in range(20)))) == 20
    finally:
        await db.dispose()
