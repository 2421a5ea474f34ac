"""Cluster-wide connection slots (bugstream/bus/redis_slots.py): two "instances" (two
RedisSlots, each with its own Redis client) share one per-user limit through Redis, and the
leases of an instance that stops renewing (it crashed) lapse after the lease time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from bugstream.bus.redis_slots import RedisSlots
from tests.support.redis import redis_prefix

pytestmark = pytest.mark.redis

LIMIT = 3
TTL = 0.5


class Instances:
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.clients: list[Redis] = []
        self.slots: list[RedisSlots] = []

    def new(self, *, ttl: float = TTL, instance_ttl: float = 3.0) -> RedisSlots:
        client = Redis.from_url(self.url)
        self.clients.append(client)
        slots = RedisSlots(client, ttl=ttl, instance_ttl=instance_ttl, prefix=self.prefix)
        self.slots.append(slots)
        return slots

    async def close(self) -> None:
        for slots in self.slots:
            await slots.stop()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def instances() -> AsyncIterator[Instances]:
    async with redis_prefix() as (url, prefix):
        made = Instances(url, prefix)
        try:
            yield made
        finally:
            await made.close()


async def test_the_limit_holds_across_instances(instances: Instances) -> None:
    a, b = instances.new(), instances.new()
    assert await a.acquire(1, "a1", LIMIT)
    assert await a.acquire(1, "a2", LIMIT)
    assert await b.acquire(1, "b1", LIMIT)
    assert not await b.acquire(1, "b2", LIMIT)
    assert not await a.acquire(1, "a3", LIMIT)
    # Another user's slots are their own.
    assert await b.acquire(2, "b-other", LIMIT)


async def test_releasing_on_one_instance_frees_a_slot_for_the_other(
    instances: Instances,
) -> None:
    a, b = instances.new(), instances.new()
    for conn in ("a1", "a2", "a3"):
        assert await a.acquire(1, conn, LIMIT)
    assert not await b.acquire(1, "b1", LIMIT)
    await a.release(1, "a2")
    assert await b.acquire(1, "b1", LIMIT)
    assert not await b.acquire(1, "b2", LIMIT)
    await a.release(1, "unknown")  # releasing what is not held changes nothing
    assert not await b.acquire(1, "b2", LIMIT)


async def test_a_crashed_instance_stops_counting_after_the_lease_and_a_live_one_does_not(
    instances: Instances,
) -> None:
    crashed, alive = instances.new(), instances.new()
    alive.start()  # renews its leases every ttl / 3, as a running instance does
    assert await crashed.acquire(1, "c1", LIMIT)
    assert await crashed.acquire(1, "c2", LIMIT)
    assert await alive.acquire(1, "a1", LIMIT)
    assert not await alive.acquire(1, "a2", LIMIT)

    # `crashed` never renews: after the lease time its two connections are gone.
    await asyncio.sleep(TTL * 2)
    assert await alive.acquire(1, "a2", LIMIT)
    assert await alive.acquire(1, "a3", LIMIT)
    # ... while a1, renewed all along, still counts.
    assert not await alive.acquire(1, "a4", LIMIT)


async def test_renewing_keeps_a_lease_past_its_first_term(instances: Instances) -> None:
    slots = instances.new()
    other = instances.new()
    assert await slots.acquire(1, "kept", 1)
    for _ in range(4):
        await asyncio.sleep(TTL / 3)
        await slots.renew()
    # 1.3 lease times later, still held.
    assert not await other.acquire(1, "other", 1)
    await slots.release(1, "kept")
    assert await other.acquire(1, "other", 1)


async def test_leases_lost_with_redis_data_count_again_after_the_next_renewal(
    instances: Instances,
) -> None:
    """Redis restarted empty: the live connections must count again, or every user could open
    the limit's worth of connections once more."""
    slots, other = instances.new(), instances.new()
    assert await slots.acquire(1, "live1", 2)
    assert await slots.acquire(1, "live2", 2)
    await instances.clients[0].delete(f"{instances.prefix}:conns:1")  # the data loss
    await slots.renew()
    assert not await other.acquire(1, "third", 2)


async def test_a_connection_released_while_its_renewal_is_in_flight_is_not_re_added(
    instances: Instances, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots, other = instances.new(), instances.new()
    assert await slots.acquire(1, "going", 1)
    renew_script = slots._renew

    async def released_first(**kwargs: Any) -> Any:
        # The worst order: the renewal has its list, the release reaches Redis, then the
        # renewal (which re-adds missing leases) does.
        await slots.release(1, "going")
        return await renew_script(**kwargs)

    monkeypatch.setattr(slots, "_renew", released_first)
    await slots.renew()
    assert await other.acquire(1, "next", 1)


async def test_a_killed_instances_slots_free_within_its_liveness_ttl(
    instances: Instances,
) -> None:
    """kill -9: the instance neither releases nor refreshes. Its leases (30 s) stop counting
    once its liveness key lapses (here 0.5 s), not after the lease (issue 11.3)."""
    killed = instances.new(ttl=30.0, instance_ttl=0.5)  # never started: it does not refresh
    alive = instances.new(ttl=30.0, instance_ttl=0.5)
    alive.start()
    for conn in ("k1", "k2", "k3"):
        assert await killed.acquire(1, conn, LIMIT)
    assert not await alive.acquire(1, "a1", LIMIT)
    await asyncio.sleep(0.8)
    assert await alive.acquire(1, "a1", LIMIT)
    assert await alive.acquire(1, "a2", LIMIT)


async def test_a_live_instance_keeps_its_slots_past_many_liveness_periods(
    instances: Instances,
) -> None:
    running = instances.new(ttl=30.0, instance_ttl=0.3)
    other = instances.new(ttl=30.0, instance_ttl=0.3)
    running.start()
    other.start()
    for conn in ("r1", "r2", "r3"):
        assert await running.acquire(1, conn, LIMIT)
    await asyncio.sleep(1.5)  # five liveness periods
    assert not await other.acquire(1, "o1", LIMIT)


async def test_a_stalled_instance_gets_its_leases_back_at_its_next_refresh(
    instances: Instances,
) -> None:
    stalled = instances.new(ttl=30.0, instance_ttl=0.3)
    other = instances.new(ttl=30.0, instance_ttl=0.3)
    for conn in ("s1", "s2"):
        assert await stalled.acquire(1, conn, 2)
    await asyncio.sleep(0.5)  # its loop did not run: the key lapsed
    assert await other.acquire(1, "o1", 2)  # and the others dropped its leases
    await other.release(1, "o1")
    await stalled.keep_alive()  # it runs again: finds its key lapsed, re-adds everything
    assert not await other.acquire(1, "o2", 2)
