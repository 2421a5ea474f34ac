"""Loading a connecting user's access without letting a reconnect storm take the database down.

After an instance restarts, thousands of clients reconnect within seconds. Each needs its
user's access (one read transaction). Unbounded, they would all wait for the database pool at
once, time out together (1011) and come back together. Instead:

- concurrent handshakes of one user share one load (single flight);
- at most `concurrency` loads run at a time; the others wait their turn in order, leaving the
  rest of the pool to REST requests and commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bugstream.services.access_snapshot import AccessSnapshot

Load = Callable[[int], Awaitable[AccessSnapshot]]


class AccessLoader:
    def __init__(self, load: Load, *, concurrency: int) -> None:
        self._load = load
        self._slots = asyncio.Semaphore(concurrency)
        self._inflight: dict[int, asyncio.Future[AccessSnapshot]] = {}

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    async def __call__(self, user_id: int) -> AccessSnapshot:
        future = self._inflight.get(user_id)
        if future is None:
            future = asyncio.ensure_future(self._bounded(user_id))
            self._inflight[user_id] = future
            future.add_done_callback(lambda _: self._inflight.pop(user_id, None))
        # A waiter that goes away (its socket closed) must not cancel the others' load.
        return await asyncio.shield(future)

    async def _bounded(self, user_id: int) -> AccessSnapshot:
        async with self._slots:
            return await self._load(user_id)
