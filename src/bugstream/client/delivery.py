"""Handing events to the application: one queue, in order, handlers before the iterator.

The connection's reader puts events, `resync_required` and `skipped` notices, and finally the
end of the session, on an unbounded queue; `Delivery.events()` takes them in order, runs the
matching handlers and the resync/skipped callbacks, and tracks `processed_event_id`, the
newest event the application finished with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from bugstream.client.errors import ResyncRequired
from bugstream.client.events import Event, Skipped, check_event_filter
from bugstream.client.wire import maybe_await

Handler = Callable[[Event], Awaitable[None] | None]
ResyncHandler = Callable[[ResyncRequired], Awaitable[None] | None]
SkippedHandler = Callable[[Skipped], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class _Stop:
    error: BaseException | None


_Item = Event | ResyncRequired | Skipped | _Stop


class Delivery:
    def __init__(
        self,
        *,
        processed_event_id: int | None,
        on_resync: ResyncHandler | None,
        on_skipped: SkippedHandler | None,
    ) -> None:
        self.processed_event_id = processed_event_id
        self.on_resync = on_resync
        self.on_skipped = on_skipped
        self._handlers: list[tuple[str | None, str | None, Handler]] = []
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()

    def put(self, item: Event | ResyncRequired | Skipped) -> None:
        self._queue.put_nowait(item)

    def stop(self, error: BaseException | None) -> None:
        """The session ended (with `error`, or closed): `events()` ends after what it holds."""
        self._queue.put_nowait(_Stop(error))

    def on(self, event_type: str | None, event: str | None) -> Callable[[Handler], Handler]:
        check_event_filter(event_type, event)

        def register(handler: Handler) -> Handler:
            self._handlers.append((event_type, event, handler))
            return handler

        return register

    async def events(self) -> AsyncIterator[Event]:
        while True:
            item = await self._queue.get()
            if isinstance(item, _Stop):
                self._queue.put_nowait(item)  # later iterations end as well
                if item.error is not None:
                    raise item.error
                return
            if isinstance(item, ResyncRequired):
                if self.on_resync is None:
                    raise item
                await maybe_await(self.on_resync(item))
                # The application refetched its state: what it has is as of the server's
                # newest event when it was told.
                self.processed_event_id = max(self.processed_event_id or 0, item.latest_event_id)
                continue
            if isinstance(item, Skipped):
                if self.on_skipped is not None:
                    await maybe_await(self.on_skipped(item))
                continue
            for event_type, name, handler in list(self._handlers):
                if event_type in (None, item.type) and name in (None, item.event):
                    await maybe_await(handler(item))
            yield item
            self.processed_event_id = item.event_id
