"""The bus contract (bugstream/bus/base.py), run against every backend: memory and Redis.

Each test builds its buses through `Buses.make`, so both backends get the same calls; time
passes with `Buses.age` (a fake clock for memory, a real short sleep for Redis, whose
retention reads Redis's own clock).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from redis.asyncio import Redis

from bugstream.bus.base import Bus, GapError, NoBase
from bugstream.bus.memory import MemoryBus
from bugstream.bus.redis import RedisBus
from bugstream.domain.events import Event, EventName, EventType
from tests.support.redis import dedicated_db, redis_prefix

TIMEOUT = 5.0


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Buses:
    """Makes buses of one backend; closes them all at the end."""

    def __init__(self, kind: str, url: str = "", prefix: str = "") -> None:
        self.kind = kind
        self.url = url
        self.prefix = prefix
        self.clock = FakeMonotonic()
        self.made: list[Bus] = []

    async def make(self, *, max_events: int = 10_000, max_age: float = 3600.0) -> Bus:
        bus: Bus
        if self.kind == "memory":
            bus = MemoryBus(max_events=max_events, max_age=max_age, clock=self.clock)
        else:
            prefix = f"{self.prefix}:{len(self.made)}"
            bus = RedisBus(
                self.url, max_events=max_events, max_age=max_age, prefix=prefix, block_ms=200
            )
        await bus.start()
        # A new Redis log has no base yet; the relay rebases it on first use (app.py).
        await bus.rebase(0)
        self.made.append(bus)
        return bus

    async def age(self, seconds: float) -> None:
        if self.kind == "memory":
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)

    async def close(self) -> None:
        for bus in self.made:
            await bus.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def buses(request: pytest.FixtureRequest) -> AsyncIterator[Buses]:
    if request.param == "memory":
        made = Buses("memory")
        yield made
        await made.close()
        return
    async with redis_prefix() as (url, prefix):
        made = Buses("redis", url, prefix)
        try:
            yield made
        finally:
            await made.close()


def event(event_id: int, *, project_id: int = 7, title: str | None = None) -> Event:
    return Event(
        event_id=event_id,
        type=EventType.BUG_REPORT,
        event=EventName.CREATED,
        payload={
            "id": event_id,
            "title": title or f"bug {event_id} ünïcode ✓",
            "assignee_id": None,
            "tags": ["a", {"nested": True}],
            "project_id": project_id,
        },
        project_id=project_id,
        user_id=None,
    )


def events(*ids: int) -> list[Event]:
    return [event(i) for i in ids]


def ids_of(batch: Sequence[Event]) -> list[int]:
    return [e.event_id for e in batch]


async def collect(bus: Bus, after_id: int, into: list[Event]) -> None:
    async for batch in bus.subscribe(after_id):
        into.extend(batch)


async def wait_for_count(got: list[Event], n: int) -> None:
    async def poll() -> None:
        while len(got) < n:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), TIMEOUT)


# ---- publishing ------------------------------------------------------------------------


async def test_publish_keeps_order_and_every_field(buses: Buses) -> None:
    bus = await buses.make()
    sent = events(1, 2, 3)
    await bus.publish(sent[:2])
    await bus.publish(sent[2:])
    await bus.publish([])
    assert await bus.replay(0) == sent  # payloads and routing keys survive the trip
    assert await bus.last_event_id() == 3


async def test_republished_and_older_ids_are_dropped(buses: Buses) -> None:
    bus = await buses.make()
    await bus.publish(events(1, 2, 3))
    # At-least-once relay: the same ids again (with different content) change nothing.
    await bus.publish([event(2, title="again"), event(3, title="again"), event(4)])
    await bus.publish([event(1, title="again")])
    assert await bus.replay(0) == events(1, 2, 3, 4)
    # An id older than the newest one, arriving late, is dropped too.
    await bus.publish(events(6))
    await bus.publish(events(5))
    assert ids_of(await bus.replay(0)) == [1, 2, 3, 4, 6]
    assert await bus.last_event_id() == 6


async def test_replay_pages_with_a_limit(buses: Buses) -> None:
    bus = await buses.make()
    await bus.publish(events(*range(1, 11)))
    assert ids_of(await bus.replay(0, limit=3)) == [1, 2, 3]
    assert ids_of(await bus.replay(3, limit=3)) == [4, 5, 6]
    assert ids_of(await bus.replay(9, limit=5)) == [10]
    assert await bus.replay(10) == []


async def test_subscribe_gives_the_backlog_after_a_position_then_live_events(
    buses: Buses,
) -> None:
    bus = await buses.make()
    await bus.publish(events(1, 2, 3, 4, 5))
    got: list[Event] = []
    reader = asyncio.create_task(collect(bus, 2, got))
    try:
        await wait_for_count(got, 3)
        assert ids_of(got) == [3, 4, 5]
        await bus.publish(events(6, 7))
        await bus.publish(events(7, 8))  # 7 is a duplicate
        await wait_for_count(got, 6)
        await asyncio.sleep(0.1)  # nothing more may arrive
        assert got == events(3, 4, 5, 6, 7, 8)
    finally:
        reader.cancel()


async def test_two_subscribers_at_different_positions_each_get_their_tail(buses: Buses) -> None:
    bus = await buses.make()
    first: list[Event] = []
    second: list[Event] = []
    readers = [asyncio.create_task(collect(bus, 0, first))]
    try:
        await bus.publish(events(1, 2))
        await wait_for_count(first, 2)
        readers.append(asyncio.create_task(collect(bus, 1, second)))
        await bus.publish(events(3))
        await wait_for_count(first, 3)
        await wait_for_count(second, 2)
        assert ids_of(first) == [1, 2, 3]
        assert ids_of(second) == [2, 3]
    finally:
        for reader in readers:
            reader.cancel()


# ---- retention -------------------------------------------------------------------------


async def test_retention_by_count_gap_before_the_window_not_at_its_edge(buses: Buses) -> None:
    bus = await buses.make(max_events=3)
    await bus.publish(events(1, 2, 3, 4, 5))
    # Kept: 3, 4, 5. A reader who has 2 misses nothing; one who has only 1 missed 2.
    assert ids_of(await bus.replay(2)) == [3, 4, 5]
    with pytest.raises(GapError) as gap:
        await bus.replay(1)
    assert gap.value.after_id == 1
    assert gap.value.oldest_retained_id == 3
    assert await bus.oldest_retained_id() == 3
    with pytest.raises(GapError):
        await bus.replay(0)

    got: list[Event] = []
    with pytest.raises(GapError):
        await asyncio.wait_for(collect(bus, 1, got), TIMEOUT)
    assert got == []
    edge: list[Event] = []
    reader = asyncio.create_task(collect(bus, 2, edge))
    try:
        await wait_for_count(edge, 3)
        assert ids_of(edge) == [3, 4, 5]
    finally:
        reader.cancel()


async def test_retention_by_age(buses: Buses) -> None:
    max_age = 60.0 if buses.kind == "memory" else 0.05
    bus = await buses.make(max_age=max_age)
    await bus.publish(events(1, 2, 3))
    await buses.age(max_age * 2)
    await bus.publish(events(4, 5))
    # 1-3 outlived the window; 4 and 5 are fresh.
    assert ids_of(await bus.replay(3)) == [4, 5]
    with pytest.raises(GapError) as gap:
        await bus.replay(2)
    assert gap.value.oldest_retained_id == 4
    assert await bus.oldest_retained_id() == 4
    assert await bus.last_event_id() == 5


async def test_retention_by_age_keeps_the_newest_event(buses: Buses) -> None:
    """A quiet log: everything is older than the window, yet the newest event stays, so a
    client that resumes from just before it still gets it rather than a gap."""
    max_age = 60.0 if buses.kind == "memory" else 0.05
    bus = await buses.make(max_age=max_age)
    await bus.publish(events(1, 2, 3))
    await buses.age(max_age * 2)
    await bus.publish(events(3))  # a re-sent duplicate: a publish that adds nothing
    assert ids_of(await bus.replay(2)) == [3]
    assert await bus.last_event_id() == 3


async def test_a_subscriber_that_falls_out_of_the_window_gets_a_gap(buses: Buses) -> None:
    bus = await buses.make(max_events=2)
    await bus.publish(events(1, 2))
    stream = aiter(bus.subscribe(0))
    first = await asyncio.wait_for(anext(stream), TIMEOUT)
    assert ids_of(first) == [1, 2]
    # While this reader dawdles, retention drops 3, which it has not read yet.
    await bus.publish(events(3, 4, 5))
    with pytest.raises(GapError):
        await asyncio.wait_for(anext(stream), TIMEOUT)


# ---- base ------------------------------------------------------------------------------


async def test_a_live_log_has_a_base_and_rebase_changes_nothing(buses: Buses) -> None:
    bus = await buses.make()
    await bus.publish(events(1, 2))
    assert await bus.has_base()
    assert await bus.position() == 2
    assert await bus.rebase(50) == 2
    await bus.publish(events(3))
    assert ids_of(await bus.replay(0)) == [1, 2, 3]


async def test_memory_log_started_after_an_id_keeps_nothing_before_it() -> None:
    bus = MemoryBus(start_after=10)
    assert await bus.last_event_id() == 10
    await bus.publish(events(9, 10, 11))
    assert ids_of(await bus.replay(10)) == [11]
    with pytest.raises(GapError):
        await bus.replay(9)


@pytest.mark.redis
async def test_redis_log_that_lost_its_data_refuses_to_publish_until_rebased() -> None:
    async with dedicated_db() as url:
        bus = RedisBus(url, prefix="bugstream")
        admin = Redis.from_url(url)
        try:
            assert not await bus.has_base()
            assert await bus.position() is None
            with pytest.raises(NoBase):
                await bus.publish(events(1))
            assert await bus.rebase(10) == 10
            assert await bus.has_base()
            assert await bus.position() == 10
            await bus.publish(events(5, 11, 12))
            assert ids_of(await bus.replay(10)) == [11, 12]
            with pytest.raises(GapError):
                await bus.replay(9)
            assert await bus.rebase(100) == 12  # a log with a base is left alone

            await admin.flushdb()  # what a Redis restart without persistence leaves
            assert not await bus.has_base()
            assert await bus.position() is None
            with pytest.raises(NoBase):
                await bus.publish(events(13))
            assert await bus.rebase(12) == 12
            await bus.publish(events(12, 13))
            assert ids_of(await bus.replay(12)) == [13]
            with pytest.raises(GapError):
                await bus.replay(11)
        finally:
            await bus.close()
            await admin.aclose()
