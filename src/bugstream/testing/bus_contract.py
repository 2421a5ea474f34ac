"""The bus contract suite (`bugstream.bus.base`), importable by bus backend authors.

Every backend must pass it. In a test module of your own, give a `buses` fixture that yields
a `BusMaker` for your backend, and import the tests:

    from bugstream.testing.bus_contract import *  # noqa: F403 (pytest collects them)

    @pytest.fixture
    async def buses():
        maker = MyBuses()   # make(max_events=..., max_age=...), age(seconds), short_age
        yield maker
        await maker.close()

bugstream runs it on the memory and Redis backends (tests/bus/test_bus_contract.py);
docs/extending.md walks through adding a backend. Needs pytest and pytest-asyncio
(`pip install bugstream[testing]`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import pytest

from bugstream.bus.base import Bus, GapError
from bugstream.domain.events import Event, EventName, EventType

__all__ = [
    "BusMaker",
    "collect",
    "event",
    "events",
    "ids_of",
    "test_a_live_log_has_a_base_and_rebase_changes_nothing",
    "test_a_subscriber_that_falls_out_of_the_window_gets_a_gap",
    "test_publish_keeps_order_and_every_field",
    "test_replay_pages_with_a_limit",
    "test_republished_and_older_ids_are_dropped",
    "test_retention_by_age",
    "test_retention_by_age_keeps_the_newest_event",
    "test_retention_by_count_gap_before_the_window_not_at_its_edge",
    "test_subscribe_gives_the_backlog_after_a_position_then_live_events",
    "test_two_subscribers_at_different_positions_each_get_their_tail",
    "wait_for_count",
]

TIMEOUT = 5.0


class BusMaker(Protocol):
    """Makes started buses of one backend for the contract tests."""

    #: A retention age (seconds) that `age` can outlast quickly: long with a fake clock,
    #: short when `age` really waits.
    short_age: float

    async def make(self, *, max_events: int = 10_000, max_age: float = 3600.0) -> Bus:
        """A started bus with a base (rebased at 0), retaining as given."""

    async def age(self, seconds: float) -> None:
        """Let `seconds` pass for the bus's retention clock."""


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
    async with asyncio.timeout(TIMEOUT):
        while len(got) < n:  # noqa: ASYNC110 (another task fills `got`; polling is simplest)
            await asyncio.sleep(0.01)


# ---- publishing ------------------------------------------------------------------------


async def test_publish_keeps_order_and_every_field(buses: BusMaker) -> None:
    bus = await buses.make()
    sent = events(1, 2, 3)
    await bus.publish(sent[:2])
    await bus.publish(sent[2:])
    await bus.publish([])
    assert await bus.replay(0) == sent  # payloads and routing keys survive the trip
    assert await bus.last_event_id() == 3


async def test_republished_and_older_ids_are_dropped(buses: BusMaker) -> None:
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


async def test_replay_pages_with_a_limit(buses: BusMaker) -> None:
    bus = await buses.make()
    await bus.publish(events(*range(1, 11)))
    assert ids_of(await bus.replay(0, limit=3)) == [1, 2, 3]
    assert ids_of(await bus.replay(3, limit=3)) == [4, 5, 6]
    assert ids_of(await bus.replay(9, limit=5)) == [10]
    assert await bus.replay(10) == []


async def test_subscribe_gives_the_backlog_after_a_position_then_live_events(
    buses: BusMaker,
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


async def test_two_subscribers_at_different_positions_each_get_their_tail(buses: BusMaker) -> None:
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


async def test_retention_by_count_gap_before_the_window_not_at_its_edge(buses: BusMaker) -> None:
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
        async with asyncio.timeout(TIMEOUT):
            await collect(bus, 1, got)
    assert got == []
    edge: list[Event] = []
    reader = asyncio.create_task(collect(bus, 2, edge))
    try:
        await wait_for_count(edge, 3)
        assert ids_of(edge) == [3, 4, 5]
    finally:
        reader.cancel()


async def test_retention_by_age(buses: BusMaker) -> None:
    max_age = buses.short_age
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


async def test_retention_by_age_keeps_the_newest_event(buses: BusMaker) -> None:
    """A quiet log: everything is older than the window, yet the newest event stays, so a
    client that resumes from just before it still gets it rather than a gap."""
    max_age = buses.short_age
    bus = await buses.make(max_age=max_age)
    await bus.publish(events(1, 2, 3))
    await buses.age(max_age * 2)
    await bus.publish(events(3))  # a re-sent duplicate: a publish that adds nothing
    assert ids_of(await bus.replay(2)) == [3]
    assert await bus.last_event_id() == 3


async def test_a_subscriber_that_falls_out_of_the_window_gets_a_gap(buses: BusMaker) -> None:
    bus = await buses.make(max_events=2)
    await bus.publish(events(1, 2))
    stream = aiter(bus.subscribe(0))
    async with asyncio.timeout(TIMEOUT):
        first = await anext(stream)
    assert ids_of(first) == [1, 2]
    # While this reader dawdles, retention drops 3, which it has not read yet.
    await bus.publish(events(3, 4, 5))
    with pytest.raises(GapError):
        async with asyncio.timeout(TIMEOUT):
            await anext(stream)


# ---- base ------------------------------------------------------------------------------


async def test_a_live_log_has_a_base_and_rebase_changes_nothing(buses: BusMaker) -> None:
    bus = await buses.make()
    await bus.publish(events(1, 2))
    assert await bus.has_base()
    assert await bus.position() == 2
    assert await bus.rebase(50) == 2
    await bus.publish(events(3))
    assert ids_of(await bus.replay(0)) == [1, 2, 3]
