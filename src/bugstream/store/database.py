"""The database handle: one async engine, and transactions that carry an outbox writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bugstream.domain.errors import Conflict
from bugstream.store.outbox import OutboxWriter
from bugstream.store.repositories import Repositories
from bugstream.store.sqlite_inline import BUSY_TIMEOUT_MS, InlineConnection, create_inline_engine

#: How long a write transaction waits for another process's SQLite write lock.
SQLITE_LOCK_TIMEOUT_SECONDS = 10.0


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when a transaction begins (see _on_sqlite_begin).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    # Foreign keys are off by default in SQLite; cascades depend on them. WAL lets readers
    # (the relay, REST reads) run while one writer commits. The busy timeout is short: the
    # statements run on the event loop (store/sqlite_inline.py), and a wait for a writer is an
    # asyncio sleep in _on_sqlite_begin. NORMAL: commits do not fsync, checkpoints do
    # (docs/deployment.md, "Durability").
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _on_sqlite_begin(conn: Any) -> None:
    # A write transaction takes the write lock up front: a deferred one that reads and then
    # writes fails with "database is locked" instead of waiting its turn.
    # On the driver's connection: SQLAlchemy's execution machinery would cost more than BEGIN.
    # A locked database raises here; InlineConnection.begin_write waits and tries again.
    options = conn.get_execution_options()
    if options.get(AUTOCOMMIT_OPTION, False):
        return  # a single-statement read: SQLite's own statement transaction is enough
    immediate = options.get(WRITE_OPTION, False)
    conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


WRITE_OPTION = "bugstream_write"
AUTOCOMMIT_OPTION = "bugstream_autocommit"

_MARK_AS_OURS = text("SELECT set_config('bugstream.origin', 'app', true)")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """An engine for `sqlite:///...` (also written `sqlite+aiosqlite:///...`) or
    `postgresql+asyncpg://...` URLs. SQLite runs on the event loop (store/sqlite_inline.py)."""
    parsed = make_url(url)
    json: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if parsed.get_backend_name() == "sqlite":
        engine: AsyncEngine
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # A file database gets a queue pool like PostgreSQL's, sized by the same settings.
            engine = create_inline_engine(
                parsed, pool_size=pool_size, max_overflow=max_overflow, **json
            )
        else:
            engine = create_inline_engine(parsed, **json)
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
        return engine
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, **json
    )


def _is_unique_violation(exc: IntegrityError) -> bool:
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate key" in text


class Transaction(Repositories):
    """An open transaction: the repositories on it, and `outbox` for the events it writes."""

    def __init__(self, conn: AsyncConnection) -> None:
        super().__init__(conn)
        self.outbox = OutboxWriter(conn)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: on an exception its rows are rolled back, and so are the
        events emitted inside it (they are written only at commit, so a database savepoint
        alone would not take them back)."""
        mark = self.outbox.mark()
        try:
            async with self.conn.begin_nested():
                yield
        except BaseException:
            self.outbox.forget_after(mark)
            raise


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        #: Called after each commit that wrote events (e.g. to wake the relay at once).
        self.on_events_committed: list[Callable[[], None]] = []
        # SQLite has one writer; its statements run on the event loop, so a second write
        # transaction must wait here (an asyncio wait), never in SQLite's lock (a loop stall).
        self._writer_lane: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @classmethod
    def from_url(cls, url: str, **pool: int) -> Database:
        return cls(create_engine(url, **pool))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Commit on normal exit, roll back (events included) on any exception."""
        async with self._lane(), self.engine.connect() as conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            if isinstance(conn, InlineConnection):
                await conn.begin_write(SQLITE_LOCK_TIMEOUT_SECONDS)
            else:
                await conn.begin()
            transaction = Transaction(conn)
            if self.dialect == "postgresql":
                # Marks the transaction as bugstream's own: the change-capture triggers skip
                # it, since it writes its events itself (migration 0002).
                await conn.execute(_MARK_AS_OURS)
            try:
                yield transaction
                # The events go last, under the commit-order lock (store/outbox.py).
                await transaction.outbox.flush()
            except IntegrityError as exc:
                await conn.rollback()
                if _is_unique_violation(exc):
                    # Two writers raced past a uniqueness check: the loser gets a conflict.
                    raise Conflict("it already exists (a concurrent change won)") from None
                raise
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()
        if transaction.outbox.events:
            for listener in self.on_events_committed:
                listener()

    def _lane(self) -> asyncio.Lock | nullcontext[None]:
        if self.dialect != "sqlite":
            return nullcontext()
        loop = asyncio.get_running_loop()
        if self._writer_lane is None or self._writer_lane[0] is not loop:
            self._writer_lane = (loop, asyncio.Lock())
        return self._writer_lane[1]

    @asynccontextmanager
    async def read(self, *, snapshot: bool = True) -> AsyncIterator[Repositories]:
        """Repositories on a read-only connection (no outbox: reads write no events).

        With `snapshot` (the default) every statement sees the same moment (one transaction).
        Without, each statement stands alone: for one-statement reads on the hot paths (who
        is asking, the relay's next batch), which then cost no BEGIN and ROLLBACK round trips.
        """
        async with self.engine.connect() as conn:
            if not snapshot:
                if self.dialect == "sqlite":
                    await conn.execution_options(**{AUTOCOMMIT_OPTION: True})
                else:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield Repositories(conn)

    async def dispose(self) -> None:
        await self.engine.dispose()
