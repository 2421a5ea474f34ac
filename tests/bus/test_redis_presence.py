"""RedisPresence, two stores on one Redis as two instances would be: what each reports.

- Transitions are counted across both and reported to both (through the channel).
- An instance that stalled past its TTL and was reaped by the other writes its entries again
  at its next refresh: its users are `joined` again, and counted once.
- A store that stops reports its users as `left` at once (no TTL to wait for).
- An entry regrouped after a membership change leaves only the projects it names now.
- An instance whose channel connection was killed says so once it is subscribed again (what
  was published meanwhile is lost to it), and follows the channel from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bugstream.bus.presence import PresenceEntry
from bugstream.bus.redis_client import redis_client
from bugstream.bus.redis_presence import RedisPresence
from bugstream.domain.presence import PresenceChange
from tests.support.redis import redis_prefix

pytestmark = pytest.mark.redis

Seen = list[tuple[str, int, tuple[int, ...], int | None]]


class Instance:
    def __init__(self, redis: Redis, prefix: str, name: str) -> None:
        self.redis = redis
        self.name = name
        self.store = RedisPresence(redis, instance_ttl=0.6, prefix=prefix)
        self.seen: Seen = []
        self.resyncs = 0

    def resynced(self) -> None:
        self.resyncs += 1

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
        # A client each, as the server makes them (they retry on a broken connection, so
        # redis-py itself subscribes again), named so that a test can cut one instance's.
        a = Instance(redis_client(url, client_name=f"{prefix}-a"), prefix, f"{prefix}-a")
        b = Instance(redis_client(url, client_name=f"{prefix}-b"), prefix, f"{prefix}-b")
        await a.store.start(a.record, a.resynced)
        await b.store.start(b.record, b.resynced)
        try:
            yield a, b
        finally:
            await b.store.stop()
            await a.store.stop()
            await a.redis.aclose()
            await b.redis.aclose()


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


async def test_an_instance_whose_channel_was_cut_says_so_when_it_is_back(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    cut = [c for c in await b.redis.client_list(_type="pubsub") if c.get("name") == a.name]
    assert len(cut) == 1, "instance a listens on one connection"
    await b.redis.client_kill_filter(_id=cut[0]["id"])
    # Published while a is away: lost to it, which is why it must say so.
    await b.store.connect("c1", PresenceEntry(7, "bob", (1,)))
    assert await b.take(1) == [("joined", 7, (1,), None)]
    async with asyncio.timeout(5):
        while a.resyncs == 0:
            await asyncio.sleep(0.02)
    assert (a.resyncs, b.resyncs) == (1, 0)
    # Subscribed again: a sees what comes next.
    a.seen.clear()
    await b.store.disconnect("c1")
    assert await a.take(1) == [("left", 7, (1,), None)]
