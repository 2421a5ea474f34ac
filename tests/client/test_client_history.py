"""The SDK's `history` and `fetch_events`: the events after an id, paged through
`GET /api/v1/events`, parsed as the stream's events; `ResyncRequired` past the window."""

from __future__ import annotations

import pytest

from bugstream.client import BugReport, ResyncRequired, fetch_events, history
from bugstream.domain.enums import Role
from tests.support.factory import Factory
from tests.support.live import live_server


async def test_history_pages_through_every_event_the_stream_delivers(factory: Factory) -> None:
    developer = await factory.user(Role.DEVELOPER)
    project = await factory.project(developer)
    async with live_server(factory.ctx) as live:
        client = await live.connect(developer)
        start = client.welcome["latest_event_id"]
        for i in range(5):
            await factory.bug(project, developer, title=f"bug {i}")
        streamed = await client.events()
        token = live.token_for(developer)

        got = [e async for e in history(live.http_url, token, after=start, limit=2)]
        assert [
            {"type": e.type, "event": e.event, "payload": e.raw, "event_id": e.event_id}
            for e in got
        ] == streamed  # the very objects /ws sent
        assert [e.payload_as(BugReport).title for e in got] == [f"bug {i}" for i in range(5)]


async def test_fetch_events_past_the_window_raises_resync_required(factory: Factory) -> None:
    admin = await factory.user(Role.ADMIN)
    project = await factory.project()
    async with live_server(factory.ctx, replay_window_events=2) as live:
        client = await live.connect(admin)
        for i in range(4):
            await factory.bug(project, admin, title=f"bug {i}")
        await client.events()
        with pytest.raises(ResyncRequired) as resync:
            await fetch_events(live.http_url, live.token_for(admin), after=0)
        page = await fetch_events(
            live.http_url, live.token_for(admin), after=resync.value.oldest_event_id - 1
        )
        assert page.events[-1].event_id == resync.value.latest_event_id
        assert len(page.events) == 2 and not page.has_more
