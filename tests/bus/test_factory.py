"""Backends by URL: the bus and the connection slots that go with it."""

from __future__ import annotations

import pytest

from bugstream.bus.factory import create_bus, create_slots
from bugstream.bus.memory import MemoryBus
from bugstream.bus.slots import MemorySlots
from tests.support.redis import dedicated_db


def test_memory_urls_give_the_in_process_backends() -> None:
    assert isinstance(create_bus("memory://", max_events=10, max_age=60), MemoryBus)
    slots = create_slots("memory://", lease_seconds=30, instance_ttl_seconds=3)
    assert isinstance(slots, MemorySlots)


@pytest.mark.parametrize("url", ["kafka://localhost", "nats://127.0.0.1:4222", "redis"])
def test_an_unknown_scheme_is_refused_with_the_ones_that_work(url: str) -> None:
    with pytest.raises(ValueError, match="memory:// or redis://"):
        create_bus(url, max_events=10, max_age=60)
    with pytest.raises(ValueError, match="memory:// or redis://"):
        create_slots(url, lease_seconds=30, instance_ttl_seconds=3)


@pytest.mark.redis
async def test_a_redis_url_gives_slots_shared_by_every_instance_on_it() -> None:
    async with dedicated_db() as url:
        first = create_slots(url, lease_seconds=30, instance_ttl_seconds=3)
        second = create_slots(url, lease_seconds=30, instance_ttl_seconds=3)
        first.start()
        second.start()
        try:
            assert await first.acquire(7, "a", limit=2)
            assert await second.acquire(7, "b", limit=2)
            assert not await first.acquire(7, "c", limit=2)  # the limit counts both
            await second.release(7, "b")
            assert await first.acquire(7, "c", limit=2)
        finally:
            await first.stop()
            await second.stop()
