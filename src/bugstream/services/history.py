"""The durable history of events: the outbox, read in event-id order.

The bus keeps a bounded window of the stream for resuming clients, and it can lose it (Redis
restarted empty; the relays rebuild it from the outbox over the next passes). What the bus
cannot serve the outbox still has: every event ever committed, in event-id order.
"""

from __future__ import annotations

from bugstream.domain.events import Event
from bugstream.services.context import ServiceContext
from bugstream.store.outbox import read_events_after


class OutboxHistory:
    """Events after an id, from the outbox (the `replay` shape of the bus, for replays)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    async def replay(self, after_id: int, limit: int = 1000) -> list[Event]:
        async with self._ctx.db.read(snapshot=False) as repos:
            return list(await read_events_after(repos.conn, after_id, limit))
