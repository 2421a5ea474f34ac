"""ReplayCache: one fetch per cursor however many clients resume at once, bounded, and never
keeping an answer that could still grow (empty) or an error."""

from __future__ import annotations

import asyncio

import pytest

from bugstream.bus.base import GapError
from bugstream.domain.events import Event
from bugstream.gateway.event_frames import encode_event
from bugstream.gateway.replay_cache import ReplayCache
from bugstream.testing.bus_contract import event


class Log:
    """An append-only log answering `replay(after, limit)`, counting the reads."""

    def __init__(self, last: int, oldest: int = 1) -> None:
        self.events = [event(i) for i in range(oldest, last + 1)]
        self.oldest = oldest
        self.reads: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def replay(self, after_id: int, limit: int = 1000) -> list[Event]:
        self.reads.append(after_id)
        await self.gate.wait()
        if after_id < self.oldest - 1:
            raise GapError(after_id, self.oldest)
        return [e for e in self.events if e.event_id > after_id][:limit]


async def test_clients_resuming_from_one_cursor_share_one_read_and_one_encoding() -> None:
    log = Log(last=30)
    log.gate.clear()
    cache = ReplayCache(log, batch_size=10)
    readers = [asyncio.create_task(cache.after(5)) for _ in range(50)]
    await asyncio.sleep(0.01)
    log.gate.set()
    batches = await asyncio.gather(*readers)
    assert log.reads == [5]
    assert [e.event_id for e, _ in batches[0]] == list(range(6, 16))
    assert all(b is batches[0] for b in batches)
    # Frames are the ones the live path would send.
    assert [item.frame for _, item in batches[0]] == [encode_event(e) for e, _ in batches[0]]
    assert await cache.after(5) is batches[0]
    assert log.reads == [5]


async def test_a_partial_batch_is_kept_and_the_next_read_goes_on_after_it() -> None:
    log = Log(last=12)
    cache = ReplayCache(log, batch_size=10)
    assert [e.event_id for e, _ in await cache.after(8)] == [9, 10, 11, 12]
    log.events.append(event(13))  # committed later
    assert [e.event_id for e, _ in await cache.after(8)] == [9, 10, 11, 12]
    assert [e.event_id for e, _ in await cache.after(12)] == [13]


async def test_nothing_yet_is_not_remembered() -> None:
    log = Log(last=12)
    cache = ReplayCache(log, batch_size=10)
    assert await cache.after(12) == []
    log.events.append(event(13))
    assert [e.event_id for e, _ in await cache.after(12)] == [13]
    assert log.reads == [12, 12]


async def test_a_gap_reaches_every_waiter_and_is_not_remembered() -> None:
    log = Log(last=30, oldest=20)
    cache = ReplayCache(log, batch_size=10)
    for _ in range(2):
        with pytest.raises(GapError):
            await cache.after(3)
    assert log.reads == [3, 3]


async def test_at_most_max_batches_are_kept_least_recently_used_first_out() -> None:
    log = Log(last=100)
    cache = ReplayCache(log, batch_size=5, max_batches=3)
    for cursor in (0, 10, 20):
        await cache.after(cursor)
    await cache.after(0)  # used again: 10 is now the oldest
    await cache.after(30)
    assert len(cache) == 3
    reads = len(log.reads)
    await cache.after(0)
    await cache.after(20)
    assert len(log.reads) == reads
    await cache.after(10)
    assert len(log.reads) == reads + 1


async def test_what_the_bus_lost_is_read_from_the_durable_history() -> None:
    emptied = Log(last=0)  # Redis came back empty, nothing republished yet
    outbox = Log(last=30)
    cache = ReplayCache(emptied, durable=outbox, batch_size=10)
    batch = await cache.after(20, upto=30)
    assert [e.event_id for e, _ in batch] == list(range(21, 31))
    assert outbox.reads == [20] and cache.durable_reads == 1


async def test_an_empty_answer_at_the_head_of_the_stream_is_not_a_loss() -> None:
    bus = Log(last=30)
    outbox = Log(last=30)
    cache = ReplayCache(bus, durable=outbox, batch_size=10)
    assert await cache.after(30, upto=30) == []
    assert await cache.after(30) == []
    assert outbox.reads == [] and cache.durable_reads == 0
