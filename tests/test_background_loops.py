"""The service's background loops (bugstream/background.py: the outbox relay, change
capture, reminders...) stop when asked, whatever moment the request arrives at, and whatever
the code they run does with a cancel.

A commit's wakeup and a shutdown's cancel can reach a loop in the same few event-loop turns.
On Python 3.11 `asyncio.wait_for` then returned normally and dropped the cancel: the loop
polled on, `stop()` waited forever, and SIGTERM ended only when the shutdown grace ran out
(and a test run hung until CI's time limit). Every interleaving must stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from bugstream.background import BackgroundLoop, cancel_and_wait
from bugstream.bus.memory import MemoryBus
from bugstream.domain.enums import Role
from bugstream.domain.events import Event
from bugstream.services.capture import CaptureWorker
from bugstream.services.context import ServiceContext
from bugstream.services.reminders import ReminderScheduler
from bugstream.store.relay import OutboxRelay
from tests.support.events import last_event_id
from tests.support.factory import Factory


def relay(ctx: ServiceContext) -> BackgroundLoop:
    bus = MemoryBus()
    return OutboxRelay(ctx.db, bus.publish, bus.last_event_id, poll_interval=60)


def capture(ctx: ServiceContext) -> BackgroundLoop:
    return CaptureWorker(ctx, interval=60)


def reminders(ctx: ServiceContext) -> BackgroundLoop:
    return ReminderScheduler(ctx, interval=60)


@pytest.mark.parametrize("make", [relay, capture, reminders], ids=["relay", "capture", "reminders"])
async def test_stop_ends_the_loop_even_when_it_coincides_with_a_wakeup(
    ctx: ServiceContext, make: Callable[[ServiceContext], BackgroundLoop]
) -> None:
    for turns in range(8):
        loop = make(ctx)
        loop.start()
        await asyncio.sleep(0.05)  # the first pass is done: it sleeps on its wakeup
        loop.wake()
        for _ in range(turns):
            await asyncio.sleep(0)
        stopping = asyncio.create_task(loop.stop())
        done, _ = await asyncio.wait({stopping}, timeout=2)
        assert stopping in done, f"stop() hung with the wakeup {turns} loop turns before it"


class Stubborn:
    """Polls like a loop whose library swallows the first `swallow` cancels it gets."""

    def __init__(self, swallow: int) -> None:
        self.swallow = swallow
        self.ended = False

    async def run(self) -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if self.swallow == 0:
                    self.ended = True
                    raise
                self.swallow -= 1


async def test_a_task_that_swallows_cancels_is_cancelled_again_until_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = Stubborn(swallow=2)
    task = asyncio.create_task(loop.run(), name="stubborn-loop")
    await asyncio.sleep(0.02)
    async with asyncio.timeout(5):
        await cancel_and_wait(task, recancel_after=0.05)
    assert task.cancelled() and loop.ended
    assert "stubborn-loop ignored 2 cancel(s) before it stopped" in caplog.text
    assert "test_background_loops.py" in caplog.text and " run" in caplog.text  # where


async def test_the_callers_own_deadline_is_not_swallowed() -> None:
    """A shutdown step with a time limit must hit it (and report the part as abandoned), not
    return as if the part had stopped."""
    loop = Stubborn(swallow=1_000_000)
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.02)  # running (a task cancelled before its first step just ends)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await cancel_and_wait(task, recancel_after=0.05)
        assert not task.done()  # it really was still running
    finally:
        loop.swallow = 0
        await cancel_and_wait(task)
    assert loop.ended


async def test_a_task_that_already_ended_is_left_as_it_is() -> None:
    async def quick() -> int:
        return 7

    task = asyncio.create_task(quick())
    await task
    await cancel_and_wait(task)
    await cancel_and_wait(None)
    assert task.result() == 7


async def test_the_relay_ends_at_its_next_batch_when_code_under_it_drops_the_cancel(
    factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncpg and redis-py sometimes finish a call instead of raising the cancel (measured:
    bench/stop_probe.py). Mid-pass, with batches still to go, the relay must not carry on."""
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    for i in range(10):
        await factory.bug(project, dev, title=f"bug {i}")
    bus = MemoryBus()
    dropped = 0

    async def publish_dropping_a_cancel(events: Sequence[Event]) -> None:
        nonlocal dropped
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            dropped += 1  # as such a library does: the call completes, the cancel is gone
        await bus.publish(events)

    relay = OutboxRelay(
        factory.ctx.db, publish_dropping_a_cancel, bus.last_event_id, batch=1, poll_interval=60
    )
    relay.start()
    await asyncio.sleep(0.02)  # inside the first batch's publish
    await relay.stop()
    assert dropped == 1
    assert "ignored" not in caplog.text  # it ended by itself, before any second cancel
    assert await bus.last_event_id() < await last_event_id(factory.ctx)  # it stopped mid-way
