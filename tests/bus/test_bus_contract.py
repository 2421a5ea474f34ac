"""The bus contract (bugstream/testing/bus_contract.py), run against every backend: memory and
Redis.

Each test builds its buses through `Buses.make`, so both backends get the same calls; time
passes with `Buses.age` (a fake clock for memory, a real short sleep for Redis, whose
retention reads Redis's own clock).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bugstream.bus.base import Bus, GapError, NoBase
from bugstream.bus.memory import MemoryBus
from bugstream.bus.redis import RedisBus
from bugstream.testing.bus_contract import *  # noqa: F403 (the contract tests, collected here)
from bugstream.testing.bus_contract import events, ids_of
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
        # Memory's clock is fake (age() is instant); Redis reads its own clock: really wait.
        self.short_age = 60.0 if kind == "memory" else 0.05
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
