"""The service's background loops (the outbox relay, change capture) stop when asked, whatever
moment the request arrives at.

A commit's wakeup and a shutdown's cancel can reach a loop in the same few event-loop turns.
On Python 3.11 `asyncio.wait_for` then returned normally and dropped the cancel: the loop
polled on, `stop()` waited forever, and SIGTERM ended only when the shutdown grace ran out
(and a test run hung until CI's time limit). Every interleaving must stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import pytest

from bugstream.bus.memory import MemoryBus
from bugstream.services.capture import CaptureWorker
from bugstream.services.context import ServiceContext
from bugstream.store.relay import OutboxRelay


class Loop(Protocol):
    def start(self) -> None: ...
    def wake(self) -> None: ...
    async def stop(self) -> None: ...


def relay(ctx: ServiceContext) -> Loop:
    bus = MemoryBus()
    return OutboxRelay(ctx.db, bus.publish, bus.last_event_id, poll_interval=60)


def capture(ctx: ServiceContext) -> Loop:
    return CaptureWorker(ctx, interval=60)


@pytest.mark.parametrize("make", [relay, capture], ids=["relay", "capture"])
async def test_stop_ends_the_loop_even_when_it_coincides_with_a_wakeup(
    ctx: ServiceContext, make: Callable[[ServiceContext], Loop]
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
