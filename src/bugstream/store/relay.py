"""The relay: moves committed outbox rows to the bus, in event-id (= commit) order.

It reads `id > position` in batches and publishes them; the bus drops ids it already has, so
a crash between publishing and remembering the position re-sends a little and loses nothing
(at-least-once, duplicates dropped by id). Event ids follow commit order (store/outbox.py), so
reading past an id never skips a row that commits later.

The position comes from the bus at every pass: several instances may relay into one shared
log, and a log that was lost (Redis restarted empty) starts again where the bus says.

It wakes at once when this process commits events (`wake`), and otherwise polls, which
catches events committed by other instances or other programs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from bugstream.background import BackgroundLoop
from bugstream.domain.events import Event
from bugstream.store.database import Database
from bugstream.store.outbox import latest_event_id, read_events_after

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[Event]], Awaitable[None]]
Position = Callable[[], Awaitable[int]]
#: The bus's newest id, or None when its log has no base (bus.base.Bus.position).
BusPosition = Callable[[], Awaitable[int | None]]
#: Start an empty log after an id; returns the newest id (bus.base.Bus.rebase).
Rebase = Callable[[int], Awaitable[int]]


def rebasing_position(
    db: Database, position: BusPosition, rebase: Rebase, *, window: int
) -> Position:
    """The relay's position policy: go on from the bus's newest id; a log without a base (the
    first start, or Redis lost its data) is started `window` events before the outbox's
    newest, so the relays republish the replay window from the outbox."""

    async def current() -> int:
        found = await position()
        if found is not None:
            return found
        async with db.read() as repos:
            latest = await latest_event_id(repos.conn)
        start = max(0, latest - window)
        log.warning(
            "the bus has no event log (first start, or it lost its data); "
            "starting it after event %d from the outbox",
            start,
        )
        return await rebase(start)

    return current


class OutboxRelay(BackgroundLoop):
    def __init__(
        self,
        db: Database,
        publish: Publish,
        position: Position,
        *,
        poll_interval: float = 0.5,
        batch: int = 500,
    ) -> None:
        super().__init__(
            "bugstream-relay",
            self.drain,
            interval=poll_interval,
            log=log,
            failure="relay pass failed; retrying",  # the database or the bus briefly away
        )
        self._db = db
        self._publish = publish
        self._position = position
        self.position = 0
        self._batch = batch
        self.published_total = 0
        #: The newest event id committed, as of the last pass.
        self.latest_committed = 0

    @property
    def lag(self) -> int:
        """Committed events not yet on the bus (as of the last pass)."""
        return max(0, self.latest_committed - self.position)

    async def drain(self) -> int:
        """Publish everything committed so far; the number of events published.

        A pass costs one bus position and one read per batch: events committed while the
        previous pass ran are published together, which is what lets the hub write them to
        each client at once.
        """
        moved = 0
        try:
            # The bus is the shared truth (several instances relay into it); ask it each pass.
            self.position = await self._position()
            # Under constant writes a pass never runs out of batches: stop() ends it between.
            while not self.stopping:
                async with self._db.read(snapshot=False) as repos:
                    events = await read_events_after(repos.conn, self.position, self._batch)
                if not events:
                    break
                self.latest_committed = max(self.latest_committed, events[-1].event_id)
                await self._publish(events)
                self.position = events[-1].event_id
                self.published_total += len(events)
                moved += len(events)
                if len(events) < self._batch:
                    break  # that was all (a further read would find nothing)
                # Let this process's subscriber read the batch before the next one: a reader
                # that falls out of the retention window must resync (bus contract).
                await asyncio.sleep(0)
        except Exception:
            # With the bus away the lag (and its alert) must still grow: count what waits.
            with contextlib.suppress(Exception):
                async with self._db.read(snapshot=False) as repos:
                    self.latest_committed = await latest_event_id(repos.conn)
            raise
        return moved
