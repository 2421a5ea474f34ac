"""The pool settings size the pool on both databases (SQLite files too, not only PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bugstream.app import service_context
from bugstream.settings import Settings


async def test_sqlite_pool_follows_the_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, db_pool_size=3, db_max_overflow=2, jwt_secret="x" * 40)
    ctx = service_context(settings)
    try:
        pool: Any = ctx.db.engine.pool
        assert (pool.size(), pool._max_overflow) == (3, 2)
    finally:
        await ctx.db.dispose()
