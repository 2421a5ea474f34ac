"""The outbox relay (bugstream/store/relay.py): every committed event reaches the bus once, in
event-id order, through crashes between publishing and remembering, and with many concurrent
writers on PostgreSQL (where ids could otherwise commit out of order: store/outbox.py)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import pytest

from bugstream.bus.memory import MemoryBus
from bugstream.domain.enums import BugStatus, Role
from bugstream.domain.events import Event
from bugstream.domain.models import BugCreate, BugStatusChange, CommentCreate, UserUpdate
from bugstream.services import bugs, comments, users
from bugstream.services.context import ServiceContext
from bugstream.store.database import Database
from bugstream.store.outbox import OUTBOX_LOCK_KEY
from bugstream.store.relay import OutboxRelay
from tests.support.events import events_since
from tests.support.factory import Factory

TIMEOUT = 10.0


def ids_of(events: Sequence[Event]) -> list[int]:
    return [e.event_id for e in events]


async def everything(bus: MemoryBus) -> list[Event]:
    return await bus.replay(0, 1_000_000)


async def subscriber(bus: MemoryBus, into: list[Event]) -> None:
    async for batch in bus.subscribe(0):
        into.extend(batch)


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def received(seen: list[Event], n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(seen) >= n

    return check


def relayed(bus: MemoryBus, event_id: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await bus.last_event_id() >= event_id

    return check


async def some_activity(factory: Factory, n: int) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    for i in range(n):
        bug = await factory.bug(project, dev, title=f"bug {i}")
        await factory.comment(bug, dev)


async def test_relay_moves_every_committed_event_once_in_order(factory: Factory) -> None:
    bus = MemoryBus()
    relay = OutboxRelay(factory.ctx.db, bus.publish, bus.last_event_id, batch=7)
    seen: list[Event] = []
    reader = asyncio.create_task(subscriber(bus, seen))
    try:
        await some_activity(factory, 5)
        outbox = await events_since(factory.ctx, 0)
        assert await relay.drain() == len(outbox)
        assert await everything(bus) == outbox

        before = len(outbox)
        await some_activity(factory, 3)
        outbox = await events_since(factory.ctx, 0)
        assert await relay.drain() == len(outbox) - before  # only the new ones
        assert relay.published_total == len(outbox)
        assert await relay.drain() == 0  # nothing new: nothing sent
        assert await everything(bus) == outbox
        await wait_until(received(seen, len(outbox)), "the subscriber")
        assert seen == outbox
    finally:
        reader.cancel()


async def test_a_crash_after_the_bus_accepted_resends_and_the_bus_drops_duplicates(
    factory: Factory,
) -> None:
    """The relay keeps its own position here and updates it only after `publish` returns; the
    first publish "crashes" after the bus took the batch, so the next pass sends it again."""
    bus = MemoryBus()
    checkpoint = 0
    calls = itertools.count()
    sent: list[int] = []

    async def position() -> int:
        return checkpoint

    async def publish_then_crash_once(events: Sequence[Event]) -> None:
        nonlocal checkpoint
        sent.extend(ids_of(events))
        await bus.publish(events)
        if next(calls) == 1:
            raise ConnectionError("lost the connection before hearing the answer")
        checkpoint = events[-1].event_id

    relay = OutboxRelay(factory.ctx.db, publish_then_crash_once, position, batch=4)
    seen: list[Event] = []
    reader = asyncio.create_task(subscriber(bus, seen))
    try:
        await some_activity(factory, 4)
        outbox = await events_since(factory.ctx, 0)
        assert len(outbox) > 8
        with pytest.raises(ConnectionError):
            await relay.drain()
        assert checkpoint == outbox[3].event_id  # the second batch was sent, not recorded
        await relay.drain()  # after the restart: sends batch two again, then the rest
        assert checkpoint == outbox[-1].event_id
        assert sent == ids_of(outbox[:8]) + ids_of(outbox[4:])  # batch two went out twice
        assert await everything(bus) == outbox
        await wait_until(received(seen, len(outbox)), "the subscriber")
        await asyncio.sleep(0.05)
        assert seen == outbox  # each once, in order
    finally:
        reader.cancel()


async def test_the_running_relay_retries_after_a_failed_publish(factory: Factory) -> None:
    bus = MemoryBus()
    failures = 2

    async def flaky(events: Sequence[Event]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("bus unavailable")
        await bus.publish(events)

    relay = OutboxRelay(factory.ctx.db, flaky, bus.last_event_id, poll_interval=0.01)
    factory.ctx.db.on_events_committed.append(relay.wake)
    relay.start()
    try:
        await some_activity(factory, 3)
        outbox = await events_since(factory.ctx, 0)
        await wait_until(relayed(bus, outbox[-1].event_id), "the relay")
        assert failures == 0
        assert await everything(bus) == outbox
    finally:
        factory.ctx.db.on_events_committed.remove(relay.wake)
        await relay.stop()


async def test_two_relays_on_one_bus_deliver_each_event_once(factory: Factory) -> None:
    """Several instances relay into one shared log: they overlap, the log does not."""
    bus = MemoryBus()
    relays = [OutboxRelay(factory.ctx.db, bus.publish, bus.last_event_id, batch=3) for _ in "ab"]
    await some_activity(factory, 4)
    await asyncio.gather(*(relay.drain() for relay in relays))
    assert await everything(bus) == await events_since(factory.ctx, 0)


async def _writer_calls(ctx: ServiceContext, factory: Factory, n: int) -> int:
    """`n` concurrent actions of several kinds, each in its own transaction."""
    dev = await factory.user(Role.DEVELOPER)
    other = await factory.user(Role.DEVELOPER)
    projects = [await factory.project(dev, other) for _ in range(3)]
    seeds = [await factory.bug(p, dev, assignee=other) for p in projects]
    actor = Factory.actor(dev)

    async def act(i: int) -> None:
        project = projects[i % len(projects)]
        seed = seeds[i % len(seeds)]
        if i % 3 == 0:
            data = BugCreate(project_id=project.id, title=f"concurrent {i}", assignee_id=other.id)
            await bugs.create_bug(ctx, actor, data)
        elif i % 3 == 1:
            await comments.create_comment(ctx, actor, seed.id, CommentCreate(content=f"c{i}"))
        else:
            status = BugStatus.IN_PROGRESS if i % 2 else BugStatus.OPEN
            await bugs.change_bug_status(ctx, actor, seed.id, BugStatusChange(status=status))

    await asyncio.gather(*(act(i) for i in range(n)))
    return n


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_concurrent_writers_yield_the_outbox_gap_free_and_in_order(
    factory: Factory,
) -> None:
    ctx = factory.ctx
    bus = MemoryBus(max_events=100_000)
    # The relay reads on a pool of its own (as another instance's relay would) and polls
    # constantly while the writers commit: a row committed after a higher id had already
    # been relayed would be skipped for good.
    own = Database.from_url(ctx.db.engine.url.render_as_string(hide_password=False))
    relay = OutboxRelay(own, bus.publish, bus.last_event_id, poll_interval=0.001, batch=5)
    ctx.db.on_events_committed.append(relay.wake)
    seen: list[Event] = []
    reader = asyncio.create_task(subscriber(bus, seen))
    relay.start()
    try:
        for _ in range(3):
            await _writer_calls(ctx, factory, 60)
        outbox = await events_since(ctx, 0)
        await wait_until(relayed(bus, outbox[-1].event_id), "the relay")
        await wait_until(received(seen, len(outbox)), "the subscriber")
    finally:
        ctx.db.on_events_committed.remove(relay.wake)
        await relay.stop()
        reader.cancel()
        await own.dispose()
    ids = ids_of(outbox)
    assert len(ids) > 300
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # no id was skipped
    assert await everything(bus) == outbox
    assert seen == outbox


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_writers_ordered_by_the_outbox_lock_do_not_deadlock_on_row_locks(
    factory: Factory,
) -> None:
    """A comment whose notification references a user (a foreign-key lock on that user's row)
    and an edit of that user (a row lock) queue for the outbox lock in that order. Both must
    commit: neither may hold a row lock while it waits for the outbox lock."""
    ctx = factory.ctx
    admin = await factory.admin()
    assignee = await factory.user(Role.DEVELOPER)
    reporter = await factory.user(Role.DEVELOPER)
    project = await factory.project(assignee, reporter)
    bug = await factory.bug(project, reporter, assignee=assignee)
    url = ctx.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    for i in range(3):
        # Another writer holds the outbox lock while both requests arrive.
        holder = await asyncpg.connect(url)
        try:
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("SELECT pg_advisory_xact_lock($1)", OUTBOX_LOCK_KEY)
            comment = asyncio.create_task(
                comments.create_comment(
                    ctx, Factory.actor(reporter), bug.id, CommentCreate(content=f"c{i}")
                )
            )
            await asyncio.sleep(0.05)
            edit = asyncio.create_task(
                users.update_user(ctx, admin, assignee.id, UserUpdate(email=f"a{i}@example.com"))
            )
            await asyncio.sleep(0.05)
            await transaction.commit()
        finally:
            await holder.close()
        done = await asyncio.wait_for(asyncio.gather(comment, edit, return_exceptions=True), 10)
        assert [type(r).__name__ for r in done] == ["Result", "Result"], done
