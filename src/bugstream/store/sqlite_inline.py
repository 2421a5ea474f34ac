"""SQLite for the asyncio code without a thread hop or a greenlet per statement.

With aiosqlite, every statement ran on a thread of its own and woke the event loop with the
result (two thread hand-offs, an eventfd wake-up and futex traffic), and SQLAlchemy's asyncio
layer added a greenlet per call: a statement cost ~100-400 µs of CPU for a few µs of SQLite
work, and a bug report (about ten statements) ~8 ms. SQLite is an in-process library, so
here the asyncio engine runs pysqlite directly on the event loop: `InlineEngine` is an
`AsyncEngine` whose connections execute statements synchronously (the `await` returns at once).
A full pool, or another process's write lock, is waited for asynchronously.

What makes running on the loop safe (docs/design.md, "SQLite on the event loop"):
- Nothing blocks on another writer: `Database` admits one write transaction at a time per
  process (an asyncio lock, the writer lane), and `BEGIN IMMEDIATE` against another process's
  lock is retried with an asyncio sleep (`InlineConnection.begin_write`) instead of SQLite's
  busy wait.
- Readers never wait in WAL mode. `busy_timeout` stays short (a stall of at most that long,
  in the rare cases WAL readers can be busy), never the seconds a writer may hold the lock.
- Commits do not fsync (`synchronous=NORMAL` in WAL); only checkpoints do.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, CursorResult, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import QueuePool, StaticPool
from sqlalchemy.util.concurrency import greenlet_spawn

#: The driver name bugstream registers; `sqlite://` and `sqlite+aiosqlite://` URLs map to it.
DRIVER = "sqlite+bugstream"

#: How long one blocking attempt may wait for a lock (SQLite's own busy handler). Short:
#: it stalls the event loop; longer waits are asyncio sleeps (`begin_write`).
BUSY_TIMEOUT_MS = 20


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite, declared async so that SQLAlchemy's asyncio layer accepts it."""

    driver = "bugstream"
    is_async = True
    supports_statement_cache = True

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        # The asyncio-aware pools of the aiosqlite dialect: a queue pool for files (a full
        # pool is waited for asynchronously), one shared connection for a memory database.
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool

    def create_connect_args(self, url: URL) -> Any:
        args, kwargs = super().create_connect_args(url)
        # Connections are used on the loop's thread only, but the pool may close one that the
        # garbage collector finalizes elsewhere.
        kwargs["check_same_thread"] = False
        return args, kwargs


registry.register("sqlite.bugstream", __name__, "InlineSQLiteDialect")


class InlineConnection(AsyncConnection):
    """An `AsyncConnection` whose statements run at once, on the calling thread.

    Opening and closing skip the greenlet and the cleanup task of the asyncio layer too:
    `InlineEngine` admits no more openers than its pool holds, so a checkout never waits.
    """

    async def start(self, is_ctxmanager: bool = False) -> AsyncConnection:
        engine = self.engine
        assert isinstance(engine, InlineEngine)
        await engine.admit()
        try:
            if engine.has_idle_connection():
                sync_connection = self.sync_engine.connect()
            else:
                # A new DBAPI connection: SQLAlchemy's first-connect hooks take an asyncio lock.
                sync_connection = await greenlet_spawn(self.sync_engine.connect)
            self.sync_connection = self._assign_proxied(sync_connection)
        except BaseException:
            engine.discharge()
            raise
        return self

    async def close(self) -> None:
        if self.sync_connection is not None and not self.sync_connection.closed:
            try:
                self.sync_connection.close()
            finally:
                engine = self.engine
                assert isinstance(engine, InlineEngine)
                engine.discharge()

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        await self.close()

    async def begin_write(self, lock_timeout: float) -> None:
        """Begin a transaction on a connection whose `begin` event takes the write lock,
        waiting for another process's lock with asyncio sleeps (not SQLite's busy wait)."""
        deadline = time.monotonic() + lock_timeout
        delay = 0.001
        while True:
            try:
                self._proxied.begin()
                return
            except (sqlite3.OperationalError, OperationalError) as exc:
                if not is_locked(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def execute(
        self,
        statement: Any,
        parameters: Any = None,
        *,
        execution_options: Any = None,
    ) -> CursorResult[Any]:
        return self._proxied.execute(statement, parameters, execution_options=execution_options)

    async def exec_driver_sql(
        self, statement: str, parameters: Any = None, execution_options: Any = None
    ) -> CursorResult[Any]:
        return self._proxied.exec_driver_sql(statement, parameters, execution_options)

    async def execution_options(self, **opt: Any) -> AsyncConnection:
        self._proxied.execution_options(**opt)
        return self

    async def commit(self) -> None:
        self._proxied.commit()

    async def rollback(self) -> None:
        self._proxied.rollback()


class InlineEngine(AsyncEngine):
    _connection_cls = InlineConnection

    def __init__(self, sync_engine: Engine, capacity: int | None) -> None:
        super().__init__(sync_engine)
        self._capacity = capacity
        self._admission: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def admit(self) -> None:
        """Wait until the pool has a connection for one more opener (None: no limit)."""
        if self._capacity is None:
            return
        loop = asyncio.get_running_loop()
        if self._admission is None or self._admission[0] is not loop:
            self._admission = (loop, asyncio.Semaphore(self._capacity))
        await self._admission[1].acquire()

    def has_idle_connection(self) -> bool:
        pool_ = self.sync_engine.pool
        if isinstance(pool_, QueuePool):
            return pool_.checkedin() > 0
        # StaticPool.connection is memoized: present in __dict__ once made (reading the
        # attribute would make it, here outside the greenlet).
        return isinstance(pool_, StaticPool) and "connection" in pool_.__dict__

    def discharge(self) -> None:
        if self._admission is not None:
            self._admission[1].release()


def create_inline_engine(
    url: URL, *, pool_size: int | None = None, max_overflow: int = 0, **kwargs: Any
) -> InlineEngine:  # kwargs: create_engine's (the JSON codecs)
    """An asyncio engine for a SQLite URL, on the inline driver. With `pool_size`, a queue
    pool of that size (plus `max_overflow`); without, one shared connection (`:memory:`)."""
    if pool_size is None:
        return InlineEngine(create_sync_engine(url.set(drivername=DRIVER), **kwargs), None)
    sync = create_sync_engine(
        url.set(drivername=DRIVER), pool_size=pool_size, max_overflow=max_overflow, **kwargs
    )
    return InlineEngine(sync, pool_size + max_overflow)


def is_locked(exc: BaseException) -> bool:
    """SQLite's "database is locked" (raw, or wrapped by SQLAlchemy)."""
    return (
        isinstance(exc, sqlite3.OperationalError | OperationalError)
        and "locked" in str(exc).lower()
    )
