"""The history of events over REST (`GET /api/v1/events`): who reads it, what a page is, and
the part of the server that serves it (the gateway's replay path: gateway/history.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bugstream.domain.events import Event


@dataclass(frozen=True, slots=True)
class Reader:
    """The caller's access when the request is made (as a /ws replay uses it)."""

    user_id: int
    admin: bool
    projects: frozenset[int]


@dataclass(frozen=True, slots=True)
class HistoryPage:
    #: the events the reader may see, oldest first
    events: list[Event]
    #: the `after` of the next page: every event up to it was looked at (seen or not visible)
    next_after: int
    #: the newest event id the server had relayed when the page was read
    latest_event_id: int
    #: whether events after `next_after` (up to `latest_event_id`) are still to be read
    has_more: bool


class EventHistory(Protocol):
    async def page(self, reader: Reader, after: int, limit: int) -> HistoryPage:
        """The events after `after` the reader may see, at most `limit`; `ResyncRequired`
        when some after `after` are no longer kept."""
