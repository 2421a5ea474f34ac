"""Replay batches shared by the clients that resume at the same time.

After an instance restarts, thousands of clients resume from nearly the same event id. Read
and encoded per client, a replay of N events to C clients costs C x N reads from the bus, JSON
decodes and frame encodings; shared, it costs N. Batches are kept by the cursor they start
after, least recently used first out, and fetched once however many clients ask at once.

A batch never goes stale: the bus's log is append-only in event-id order (the outbox's
ids follow commit order), so once a batch ends at id e, no event with an id below e can appear
later; a client that needs more goes on from e. A batch may outlive the log's retention; its
events are still the right ones, just older than the log now keeps.

When the bus has nothing after a cursor that is below what this instance has already
delivered (`upto`), the bus lost events it had (Redis restarted empty, and the relays have not
republished that far yet): the batch comes from the durable history (the outbox) instead. A
silent empty answer there would skip the events without a `resync_required`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Protocol

from bugstream.domain.events import Event
from bugstream.gateway.connection import Outgoing
from bugstream.gateway.event_frames import outgoing

Batch = list[tuple[Event, Outgoing]]

log = logging.getLogger("bugstream.gateway")


class Log(Protocol):
    """The part of the bus a replay reads."""

    async def replay(self, after_id: int, limit: int = ...) -> list[Event]: ...


class ReplayCache:
    def __init__(
        self,
        log: Log,
        *,
        durable: Log | None = None,
        batch_size: int = 500,
        max_batch_bytes: int = 512 * 1024,
        max_batches: int = 64,
        max_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._log = log
        self._durable = durable
        #: Batches read from the durable history because the bus had lost them.
        self.durable_reads = 0
        self._warned_at = 0.0
        self.batch_size = batch_size
        # Bounds in bytes of frames: a batch (what one resuming client holds while it drains
        # it) and the cache (what all of them share); events may be large (issue 11.2).
        self._max_batch_bytes = max_batch_bytes
        self._max_bytes = max_bytes
        self._bytes = 0
        self._max_batches = max_batches
        self._batches: OrderedDict[int, Batch] = OrderedDict()
        self._inflight: dict[int, asyncio.Future[Batch]] = {}

    def __len__(self) -> int:
        return len(self._batches)

    async def after(self, cursor: int, upto: int | None = None) -> Batch:
        """The events after `cursor` (up to `batch_size`), with their frames; [] if none.

        With `upto` (the newest id the caller knows was committed), an empty answer from the
        bus while `cursor < upto` is read from the durable history instead.
        """
        batch = await self._after(cursor)
        if batch or upto is None or cursor >= upto or self._durable is None:
            return batch
        events = await self._durable.replay(cursor, self.batch_size)
        self.durable_reads += 1
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning(
                "the event log lacks events after %d that were delivered (up to %d): it lost "
                "them (Redis restarted empty?); replaying from the outbox",
                cursor,
                upto,
            )
        return self._encoded(events)

    def _encoded(self, events: list[Event]) -> Batch:
        """The events with their frames, cut after `max_batch_bytes` (at least one)."""
        batch: Batch = []
        size = 0
        for event in events:
            item = outgoing(event)
            batch.append((event, item))
            size += len(item.frame)
            if size >= self._max_batch_bytes:
                break
        return batch

    async def _after(self, cursor: int) -> Batch:
        batch = self._batches.get(cursor)
        if batch is not None:
            self._batches.move_to_end(cursor)
            return batch
        future = self._inflight.get(cursor)
        if future is None:
            future = asyncio.ensure_future(self._load(cursor))
            self._inflight[cursor] = future
            future.add_done_callback(lambda _: self._inflight.pop(cursor, None))
        return await asyncio.shield(future)

    async def _load(self, cursor: int) -> Batch:
        events = await self._log.replay(cursor, self.batch_size)
        batch = self._encoded(events)
        if batch:  # an empty answer may not stay empty
            self._batches[cursor] = batch
            self._bytes += _size(batch)
            while len(self._batches) > self._max_batches or (
                self._bytes > self._max_bytes and len(self._batches) > 1
            ):
                _, evicted = self._batches.popitem(last=False)
                self._bytes -= _size(evicted)
        return batch


def _size(batch: Batch) -> int:
    return sum(len(item.frame) for _, item in batch)
