"""Shutdown always ends: a part that does not stop within the grace is abandoned and named."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bugstream.domain.enums import Role
from tests.support.factory import Factory
from tests.support.live import live_server


async def test_a_part_that_hangs_on_stop_does_not_hang_the_shutdown(
    factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    dev = await factory.user(Role.DEVELOPER)

    async def never_stops() -> None:
        await asyncio.Event().wait()

    caplog.set_level(logging.WARNING, logger="bugstream")
    started = 0.0
    async with live_server(factory.ctx, shutdown_grace_seconds=1.0) as live:
        await live.connect(dev)
        live.app.state.runtime.scheduler.stop = never_stops
        started = time.monotonic()
    took = time.monotonic() - started
    assert took < 6.0, took
    assert "stopping the reminder scheduler took over 1 s; abandoned" in caplog.text
    # The parts after it were still stopped (the gateway's consumer, the relay, the bus).
    assert "stopping the gateway" not in caplog.text
