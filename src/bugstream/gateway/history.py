"""The history of events over REST (`GET /api/v1/events`): a page of what a /ws replay after
the same id would send, read the same way.

A page is read through the replay cache (the bus's retained window; the outbox when the bus
lost events it had), up to the hub's position (the newest event this instance has relayed to
its /ws clients), and filtered with the caller's access when the request is made, as a replay
is filtered with the access of the resuming connection (docs/design.md). An `after` older than
the bus retains is `resync_required`, as a replay's would be.

A caller who may see few of the events (a viewer of one small project among busy ones) could
make one request look at the whole window: a page stops after `MAX_SCANNED` events even when it
has fewer than `limit` items, and its `next_after` says how far it looked.
"""

from __future__ import annotations

from bugstream.bus.base import GapError
from bugstream.domain.audience import may_see
from bugstream.domain.errors import ResyncRequired
from bugstream.domain.events import Event
from bugstream.domain.history import HistoryPage, Reader
from bugstream.gateway.hub import Hub
from bugstream.gateway.replay_cache import ReplayCache

#: The events one page looks at, at most (a few replay batches).
MAX_SCANNED = 5000


class StreamHistory:
    def __init__(
        self,
        *,
        hub: Hub,
        replays: ReplayCache,
        max_scanned: int = MAX_SCANNED,
    ) -> None:
        self._hub = hub
        self._replays = replays
        self.max_scanned = max_scanned

    async def page(self, reader: Reader, after: int, limit: int) -> HistoryPage:
        upto = self._hub.position
        events: list[Event] = []
        cursor = after
        scanned = 0
        try:
            while cursor < upto and len(events) < limit and scanned < self.max_scanned:
                batch = await self._replays.after(cursor, upto)
                if not batch:
                    break
                for event, _ in batch:
                    if event.event_id > upto:
                        cursor = upto  # every event up to it was looked at
                        break
                    if len(events) == limit or scanned == self.max_scanned:
                        break
                    cursor = event.event_id
                    scanned += 1
                    if may_see(reader.user_id, reader.admin, reader.projects, event):
                        events.append(event)
        except GapError as gap:
            raise ResyncRequired(after, gap.oldest_retained_id, upto) from None
        next_after = max(after, cursor)
        return HistoryPage(events, next_after, upto, has_more=next_after < upto)
