"""The in-process bus: a bounded ring of events and a condition to wake subscribers."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

from bugstream.bus.base import GapError
from bugstream.domain.events import Event


class MemoryBus:
    """Retains at most `max_events` events, and none older than `max_age` seconds.

    `start_after` is the id the log starts after (events up to it count as already dropped),
    so that a log rebuilt after a restart knows where it begins.
    """

    def __init__(
        self,
        *,
        max_events: int = 10_000,
        max_age: float = 3600.0,
        start_after: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_events = max_events
        self._max_age = max_age
        self._clock = clock
        self._ids: deque[int] = deque()
        self._events: deque[Event] = deque()
        self._times: deque[float] = deque()
        self._last_id = start_after
        # Everything up to this id has been dropped (or never existed).
        self._dropped_through = start_after
        self._changed = asyncio.Condition()
        self._closed = False

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._closed = True
        async with self._changed:
            self._changed.notify_all()

    async def publish(self, events: Sequence[Event]) -> None:
        now = self._clock()
        added = False
        for event in events:
            if event.event_id <= self._last_id:
                continue  # a duplicate from an at-least-once relay
            self._ids.append(event.event_id)
            self._events.append(event)
            self._times.append(now)
            self._last_id = event.event_id
            added = True
        self._trim(now)
        if added:
            async with self._changed:
                self._changed.notify_all()

    async def last_event_id(self) -> int:
        return self._last_id

    async def position(self) -> int | None:
        return self._last_id

    async def has_base(self) -> bool:
        return True  # it lives and dies with the process

    async def rebase(self, start_after: int) -> int:
        return self._last_id

    async def oldest_retained_id(self) -> int:
        self._trim(self._clock())
        return self._dropped_through + 1

    def _trim(self, now: float) -> None:
        # Age never drops the newest event (as in the Redis log): a quiet log still lets a
        # client resume from just before it.
        while self._events and (
            len(self._events) > self._max_events
            or (now - self._times[0] > self._max_age and len(self._events) > 1)
        ):
            self._dropped_through = self._ids.popleft()
            self._events.popleft()
            self._times.popleft()

    def _after(self, after_id: int, limit: int) -> list[Event]:
        self._trim(self._clock())
        if after_id < self._dropped_through:
            raise GapError(after_id, self._dropped_through + 1)
        start = bisect.bisect_right(self._ids, after_id)
        stop = min(len(self._events), start + limit)
        return [self._events[i] for i in range(start, stop)]

    async def replay(self, after_id: int, limit: int = 1000) -> list[Event]:
        return self._after(after_id, limit)

    async def subscribe(self, after_id: int) -> AsyncIterator[list[Event]]:
        position = after_id
        while not self._closed:
            batch = self._after(position, 1000)
            if batch:
                position = batch[-1].event_id
                yield batch
                continue
            async with self._changed:
                while not self._closed and self._last_id <= position:
                    await self._changed.wait()
