"""How far change capture is behind: the age of the oldest change it has not processed.

The triggers record every outside change whether or not a capture worker runs. With the
worker off on every instance (`BUGSTREAM_CHANGE_CAPTURE_ENABLED=false`), or failing, the
changes never become events and `captured_changes` grows; this probe makes that visible as
`bugstream_capture_oldest_pending_seconds` (alert `BugstreamChangeCaptureBehind`). Every
PostgreSQL instance runs it, capture enabled or not. The query reads one row by primary key,
so it stays cheap however large the backlog gets.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from bugstream.background import BackgroundLoop
from bugstream.services.context import ServiceContext
from bugstream.store.tables import captured_changes

log = logging.getLogger(__name__)


async def oldest_pending_age(ctx: ServiceContext) -> float:
    """Seconds since the oldest unprocessed change was recorded; 0 when there is none. Both
    times are the database's (the trigger's `now()`), whatever the service's clock says."""
    age = func.extract("epoch", func.now() - captured_changes.c.created_at)
    async with ctx.db.read() as repos:
        seconds = (
            await repos.conn.execute(select(age).order_by(captured_changes.c.id).limit(1))
        ).scalar_one_or_none()
    return max(0.0, float(seconds)) if seconds is not None else 0.0


class CaptureBacklogProbe(BackgroundLoop):
    """Measures `oldest_pending_age` every `interval` seconds; `value` is the last reading."""

    def __init__(self, ctx: ServiceContext, *, interval: float) -> None:
        super().__init__(
            "bugstream-capture-backlog",
            self._measure,
            interval=interval,
            log=log,
            failure="reading the change-capture backlog failed",
        )
        self._ctx = ctx
        self.value = 0.0

    async def _measure(self) -> None:
        self.value = await oldest_pending_age(self._ctx)
