"""RedisPresence, two stores on one Redis as two instances would be: what each reports.

- Transitions are counted across both and reported to both (through the channel).
- An instance that stalled past its TTL and was reaped by the other writes its entries again
  at its next refresh: its users are `joined` again, and counted once.
- A store that stops reports its users as `left` at once (no TTL to wait for).
- An entry regrouped after a membership change leaves only the projects it names now.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bugstream.bus.presence import PresenceEntry
from bugstream.bus.redis_presence import RedisPresence
from bugstream.domain.presence import PresenceChange
from tests.support.redis import redis_prefix

pytestmark = pytest.mark.redis

Seen = list[tuple[str, int, tuple[int, ...], int | None]]


class Instance:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.store = RedisPresence(redis, instance_ttl=0.6, prefix=prefix)
        self.seen: Seen = []

    def record(self, changes: list[PresenceChange]) -> None:
        self.seen += [(c.event.value, c.user_id, c.project_ids, c.bug_report_id) for c in changes]

    async def take(self, count: int) -> Seen:
        async with asyncio.timeout(5):
            while len(self.seen) < count:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # nothing more
        taken, self.seen = self.seen, []
        return taken


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Instance, Instance]]:
    async with redis_prefix() as (url, prefix):
        redis = Redis.from_url(url)
        a, b = Instance(redis, prefix), Instance(redis, prefix)
        await a.store.start(a.record)
        await b.store.start(b.record)
        try:
            yield a, b
        finally:
            await b.store.stop()
            await a.store.stop()
            await redis.aclose()


async def test_transitions_are_counted_across_instances_and_seen_by_both(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    await a.store.connect("c1", PresenceEntry(7, "bob", (1, 2)))
    await b.store.connect("c2", PresenceEntry(7, "bob", (1, 2)))
    assert await b.take(1) == [("joined", 7, (1, 2), None)]
    await b.store.view("c2", 40, 1)
    await a.store.view("c1", 40, 1)
    assert await a.take(2) == [("joined", 7, (1, 2), None), ("viewing", 7, (1,), 40)]
    assert await b.take(1) == [("viewing", 7, (1,), 40)]
    assert await a.store.connections([7, 8]) == {7: 2}
    assert await a.store.viewers(1) == {40: {7}}
    await a.store.disconnect("c1")
    await b.store.view("c2", None, None)
    assert await b.take(1) == [("stopped_viewing", 7, (1,), 40)]
    await b.store.disconnect("c2")
    assert await a.take(2) == [("stopped_viewing", 7, (1,), 40), ("left", 7, (1, 2), None)]
    assert await b.store.connections([7]) == {}


async def test_a_stalled_instance_that_was_reaped_comes_back(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    await a.store.connect("c1", PresenceEntry(7, "bob", (1,)))
    await b.take(1)
    await a.store._leases.stop()  # stalls: no refresh
    assert await b.take(1) == [("left", 7, (1,), None)]  # reaped after its TTL
    assert await b.store.connections([7]) == {}
    await a.store.keep_alive()  # the next refresh finds its key lapsed
    assert await b.take(1) == [("joined", 7, (1,), None)]
    assert await b.store.connections([7]) == {7: 1}


async def test_a_stopping_instance_s_users_leave_at_once(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    await a.store.connect("c1", PresenceEntry(7, "bob", (1,)))
    await a.store.view("c1", 40, 1)
    await b.take(2)
    await a.store.stop()
    assert await b.take(2) == [("stopped_viewing", 7, (1,), 40), ("left", 7, (1,), None)]


async def test_a_regrouped_entry_leaves_only_its_current_projects(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    await a.store.connect("c1", PresenceEntry(7, "bob", (1, 2)))
    await a.store.view("c1", 40, 2)
    await b.take(2)
    await a.store.regroup("c1", (2,))  # removed from project 1: nothing to report
    await a.store.regroup("c1", ())
    await a.store.regroup("c1", (2,))
    await a.store.disconnect("c1")
    assert await b.take(2) == [("stopped_viewing", 7, (2,), 40), ("left", 7, (2,), None)]
