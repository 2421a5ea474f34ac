"""Resuming with `last_event_id`: every missed event once, in order, then the live stream."""

from __future__ import annotations

import asyncio

from bugstream.domain.enums import Role
from bugstream.domain.models import BugCreate
from bugstream.services import bugs
from bugstream.store.outbox import read_events_after
from tests.support.factory import Factory
from tests.support.live import Client, live_server


async def _create_bugs(factory: Factory, project_id: int, reporter_id: int, n: int) -> None:
    actor = (await factory.admin()) if reporter_id == 0 else None
    assert actor is not None
    for i in range(n):
        await bugs.create_bug(
            factory.ctx, actor, BugCreate(project_id=project_id, title=f"bug {i}")
        )


async def _ids_visible_to_member(factory: Factory, after: int) -> list[int]:
    async with factory.ctx.db.read() as repos:
        events = await read_events_after(repos.conn, after, 10_000)
    return [e.event_id for e in events if e.type.value == "bug_report"]


async def _bug_event_ids(client: Client) -> list[int]:
    return [m["event_id"] for m in await client.events() if m["type"] == "bug_report"]


async def test_reconnect_with_last_event_id_gets_missed_events_then_live(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        first = await live.connect(dev)
        start = first.welcome["latest_event_id"]
        await _create_bugs(factory, project.id, 0, 3)
        seen = await _bug_event_ids(first)
        assert len(seen) == 3
        await first.close()

        await _create_bugs(factory, project.id, 0, 4)  # missed while away
        second = await live.connect(dev, query=f"last_event_id={seen[-1]}")
        await _create_bugs(factory, project.id, 0, 2)  # live after the reconnect
        resumed = await _bug_event_ids(second)

        expected = await _ids_visible_to_member(factory, start)
        assert seen + resumed == expected
        assert len(resumed) == 6


async def test_no_gap_and_no_duplicate_when_events_commit_during_the_replay(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        start = (await live.connect(dev)).welcome["latest_event_id"]
        await _create_bugs(factory, project.id, 0, 30)
        writer = asyncio.create_task(_create_bugs(factory, project.id, 0, 30))
        await asyncio.sleep(0.05)
        client = await live.connect(dev, query=f"last_event_id={start}")
        await writer
        received = await _bug_event_ids(client)
        assert received == await _ids_visible_to_member(factory, start)
        assert len(received) == 60


async def test_resume_outside_the_window_gets_resync_required_then_live(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx, replay_window_events=5) as live:
        start = (await live.connect(dev)).welcome["latest_event_id"]
        await _create_bugs(factory, project.id, 0, 8)
        ids = await _ids_visible_to_member(factory, start)

        # Inside the window: the last five events are still kept.
        inside = await live.connect(dev, query=f"last_event_id={ids[-6]}")
        assert await _bug_event_ids(inside) == ids[-5:]

        # Outside: told to resync, then the live stream continues.
        outside = await live.connect(dev, query=f"last_event_id={ids[0]}")
        resync = await outside.next()
        assert resync["type"] == "resync_required"
        assert resync["payload"]["code"] == "resync_required"
        assert resync["payload"]["last_event_id"] == ids[0]
        assert resync["payload"]["oldest_event_id"] > ids[0]
        await _create_bugs(factory, project.id, 0, 1)
        live_ids = await _bug_event_ids(outside)
        assert live_ids == (await _ids_visible_to_member(factory, ids[-1]))


async def test_resume_message_first_works_and_later_is_refused(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        first = await live.connect(dev)
        start = first.welcome["latest_event_id"]
        await _create_bugs(factory, project.id, 0, 3)
        # Once the instance has delivered them, a new connection gets no live event before
        # its resume message (a resume message racing live events is refused: see below).
        assert len(await _bug_event_ids(first)) == 3
        client = await live.connect(dev)
        await client.send(
            {"type": "resume", "request_id": "r", "payload": {"last_event_id": start}}
        )
        assert await _bug_event_ids(client) == await _ids_visible_to_member(factory, start)

        answer = await client.command("resume", {"last_event_id": start}, request_id="again")
        assert answer["type"] == "error"
        assert answer["payload"]["code"] == "conflict"
        bad = await client.command("resume", {"last_event_id": "x"}, request_id="bad")
        assert bad["payload"]["code"] == "validation_failed"


async def test_resume_skips_what_a_client_already_has_from_a_faster_instance(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        client = await live.connect(dev, query="last_event_id=1000000")
        await _create_bugs(factory, project.id, 0, 2)
        # Every new event has an id below the one the client claims to have: none is resent.
        assert await _bug_event_ids(client) == []
