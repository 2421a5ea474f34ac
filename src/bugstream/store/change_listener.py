"""LISTEN for the change-capture trigger's NOTIFY on a dedicated PostgreSQL connection.

The notification carries nothing (NOTIFY payloads stop at 8000 bytes, so rows never travel
in them); it only wakes the capture worker, which reads `captured_changes` itself. A lost
connection is re-established; the worker's polling covers the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bugstream.background import cancel_and_wait

log = logging.getLogger(__name__)

CHANNEL = "bugstream_changes"


class ChangeListener:
    def __init__(self, database_url: str, on_change: Callable[[], None]) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bugstream-change-listener")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def _notified(self, *_args: Any) -> None:
        self._on_change()

    async def _run(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                try:
                    await conn.add_listener(CHANNEL, self._notified)
                    self._on_change()  # catch up on anything recorded while not listening
                    await lost.wait()
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("change listener lost its connection; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    return lambda _conn: event.set()
