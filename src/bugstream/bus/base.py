"""The contract every bus backend keeps (the contract suite in tests/bus runs each one).

- `publish(events)`: append events in the order given. Events must come in increasing
  `event_id` order; an id at or below the newest already in the log is a duplicate (the relay
  is at-least-once) and is dropped, so each id is in the log once.
- `subscribe(after_id)`: every event with id > `after_id`, in id order, with no gaps and no
  duplicates, first those already in the log, then new ones as they are published, in
  batches. If `after_id` has already left the retention window the iterator raises `GapError`.
- `replay(after_id, limit)`: the events after `after_id` still retained, oldest first, or
  `GapError` when some after `after_id` have been dropped by retention.
- `has_base()` / `rebase(start_after)`: a log that lost its state (Redis restarted without
  persistence) refuses to publish (`NoBase`) until rebased; the relays then republish from
  the outbox.
  `position()` answers both questions at once: the newest id, or None without a base (the
  relay asks on every pass).
- Retention is bounded (by count and by age); `oldest_retained_id` says where it starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from bugstream.domain.events import Event


class GapError(Exception):
    """Events after the requested position are no longer retained: the reader must resync."""

    def __init__(self, after_id: int, oldest_retained_id: int) -> None:
        super().__init__(
            f"events after {after_id} are gone; the oldest retained is {oldest_retained_id}"
        )
        self.after_id = after_id
        self.oldest_retained_id = oldest_retained_id


class NoBase(Exception):
    """The log lost its state (e.g. Redis restarted empty): `rebase` before publishing."""


class Bus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, events: Sequence[Event]) -> None: ...

    async def last_event_id(self) -> int: ...

    async def has_base(self) -> bool:
        """False when the log lost its state (e.g. Redis restarted empty)."""

    async def position(self) -> int | None:
        """The newest id in the log, or None when it has no base (one round trip)."""

    async def rebase(self, start_after: int) -> int:
        """Start an empty log after `start_after` unless it has a base; the newest id."""

    async def oldest_retained_id(self) -> int:
        """The first id a reader can still get (everything before it was dropped)."""

    def subscribe(self, after_id: int) -> AsyncIterator[list[Event]]: ...

    async def replay(self, after_id: int, limit: int = 1000) -> list[Event]: ...
