"""The SDK's `history` and `fetch_events`: the events after an id, paged through
`GET /api/v1/events`, parsed as the stream's events; `ResyncRequired` past the window."""

from __future__ import annotations

import asyncio

import httpx
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


async def test_an_answer_that_is_not_bugstreams_is_an_http_error() -> None:
    # A proxy's error page in front of the server: not JSON, so no typed bugstream error.
    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"<html>502 Bad Gateway</html>"
        writer.write(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(httpx.HTTPStatusError) as failed:
            await fetch_events(f"http://127.0.0.1:{port}", "t", after=0)
    assert failed.value.response.status_code == 502
