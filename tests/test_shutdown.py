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


async def test_a_failed_startup_stops_what_it_had_started(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Startup is exception-safe (issue 11.6): loops started before a failure stop with it."""
    from bugstream.app import create_app
    from bugstream.gateway.gateway import Gateway
    from tests.support.live import live_settings

    async def broken_start(self: Gateway) -> None:
        raise RuntimeError("the gateway could not start")

    monkeypatch.setattr(Gateway, "start", broken_start)
    app = create_app(live_settings(), ctx=factory.ctx)
    before = set(asyncio.all_tasks())
    with pytest.raises(RuntimeError, match="could not start"):
        async with app.router.lifespan_context(app):
            pass
    runtime = app.state.runtime
    assert runtime.relay is not None and not runtime.relay.running
    await asyncio.sleep(0.05)
    leftover = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert leftover == [], leftover
