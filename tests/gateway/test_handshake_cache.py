"""A user who already has a connection on this instance opens another without a database round
trip: the hub's record of them is current, renames and role changes included."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from websockets.exceptions import InvalidStatus

from bugstream.domain.enums import Role
from bugstream.domain.models import UserUpdate
from bugstream.services import users
from bugstream.services.access_snapshot import AccessSnapshot
from bugstream.store.database import Database
from tests.support.factory import Factory
from tests.support.live import live_server
from tests.support.metrics import scrape, value
from tests.support.waiting import wait_until


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement the engine runs meanwhile (a real engine, counted, not replaced)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_a_second_connection_needs_no_database_and_sees_current_name_and_role(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    admin = await factory.admin()
    quiet = {"relay_poll_interval_seconds": 60, "change_capture_enabled": False}
    async with live_server(factory.ctx, **quiet) as live:
        first = await live.connect(dev)
        # A rename and a promotion reach the hub as events...
        update = UserUpdate(username="renamed", role=Role.MANAGER)
        await users.update_user(factory.ctx, admin, dev.id, update)
        await first.expect_event("user", "updated")
        # ...so the second connection is answered from memory, with the new name and role.
        with statements(factory.ctx.db) as seen:
            second = await live.connect(dev)
        # (The relay may be reading the outbox meanwhile: that is not the handshake.)
        assert [sql for sql in seen if "users" in sql or "memberships" in sql] == []
        assert second.welcome["user"] == {"id": dev.id, "username": "renamed", "role": "manager"}
        # And it receives its project's events like the first.
        bug = await factory.bug(project, dev)
        for client in (first, second):
            created = await client.expect_event("bug_report", "created")
            assert created["payload"]["id"] == bug.id


async def test_after_the_last_connection_closes_the_database_is_asked_again(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        first = await live.connect(dev)
        await first.close()
        await wait_until(lambda: live.gateway.hub.known_user(dev.id) is None)
        with statements(factory.ctx.db) as seen:
            await live.connect(dev)
        assert any("users" in sql for sql in seen)


async def test_a_storm_of_handshakes_is_queued_not_refused(factory: Factory) -> None:
    """300 clients of 100 users connect at once with a database budget of one load at a time:
    every one is welcomed (none gets 1011 for want of a database connection)."""
    people = [await factory.user(Role.DEVELOPER) for _ in range(100)]
    await factory.project(*people)
    async with live_server(factory.ctx, db_pool_size=2) as live:
        assert live.gateway.config.access_load_concurrency == 1
        tokens = [live.token_for(person) for person in people] * 3
        clients = await asyncio.gather(*(live.connect(token) for token in tokens))
        assert all(client.welcome["connection_id"] for client in clients)
        assert live.gateway.hub.connection_count == 300
        assert len({c.welcome["connection_id"] for c in clients}) == 300


async def test_handshakes_past_the_pending_limit_get_503_and_may_retry(factory: Factory) -> None:
    alice = await factory.user(Role.DEVELOPER)
    bob = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, ws_max_pending_handshakes=1) as live:
        opener = live.gateway.opener
        real_load = opener.load_access
        release = asyncio.Event()

        async def held_load(user_id: int) -> AccessSnapshot:
            await release.wait()  # the first handshake stays pending until released
            return await real_load(user_id)

        opener.load_access = held_load
        first = asyncio.create_task(live.connect(alice))
        await wait_until(lambda: opener.pending == 1)
        with pytest.raises(InvalidStatus) as refused:
            await live.connect(bob)
        assert refused.value.response.status_code == 503
        assert b"retry" in refused.value.response.body
        release.set()
        assert (await first).welcome["user"]["id"] == alice.id
        opener.load_access = real_load
        assert (await live.connect(bob)).welcome["user"]["id"] == bob.id
        metrics = await scrape(live.http_url)
        assert value(metrics, "bugstream_ws_connects_total", result="http_503") == 1
