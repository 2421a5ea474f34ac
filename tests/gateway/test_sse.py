"""The SSE fallback (issue 14.3): `GET /api/v1/events/stream` delivers what `/ws` delivers,
resumes with `Last-Event-ID`, is authenticated and limited like `/ws`, and takes client
messages over `POST /api/v1/events/stream/{connection_id}`. Real sockets, a live server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from bugstream.domain.enums import Role
from bugstream.domain.models import User
from bugstream.gateway.frames import json_frame, text_frame
from bugstream.gateway.sse import frame_messages, sse_event
from bugstream.testing.live import LiveServer, live_server, refused

STREAM = "/api/v1/events/stream"


@dataclass
class SseEvent:
    data: dict[str, Any]
    id: str | None = None
    event: str | None = None


@dataclass
class Stream:
    response: httpx.Response
    events: asyncio.Queue[SseEvent] = field(default_factory=asyncio.Queue)
    comments: list[str] = field(default_factory=list)

    async def next(self, timeout: float = 5.0) -> SseEvent:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def until(self, predicate: Any, timeout: float = 5.0) -> SseEvent:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if predicate(event):
                    return event


async def _read(stream: Stream) -> None:
    fields: dict[str, str] = {}
    async for line in stream.response.aiter_lines():
        if line.startswith(":"):
            stream.comments.append(line)
        elif line == "":
            if "data" in fields:
                data = orjson.loads(fields["data"])
                await stream.events.put(SseEvent(data, fields.get("id"), fields.get("event")))
            fields = {}
        else:
            name, _, value = line.partition(": ")
            fields[name] = value


@asynccontextmanager
async def open_stream(
    server: LiveServer, user: User | None = None, **request: Any
) -> AsyncIterator[Stream]:
    headers = dict(request.pop("headers", {}))
    if user is not None:
        headers["Authorization"] = f"Bearer {server.token_for(user)}"
    async with (
        httpx.AsyncClient(base_url=server.http_url, timeout=10) as http,
        http.stream("GET", STREAM, headers=headers, **request) as response,
    ):
        stream = Stream(response)
        reader = asyncio.create_task(_read(stream)) if response.status_code == 200 else None
        try:
            yield stream
        finally:
            if reader is not None:
                reader.cancel()


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with live_server(ws_ping_interval_seconds=0.3) as live:
        yield live


async def _project(server: LiveServer, admin: User, *members: User) -> int:
    async with server.http(admin) as http:
        project = (await http.post("/api/v1/projects", json={"name": "Apollo"})).json()
        for member in members:
            await http.post(
                f"/api/v1/projects/{project['id']}/members", json={"user_id": member.id}
            )
    project_id: int = project["id"]
    return project_id


async def _bug(server: LiveServer, user: User, project_id: int, title: str) -> dict[str, Any]:
    async with server.http(user) as http:
        response = await http.post("/api/v1/bugs", json={"project_id": project_id, "title": title})
    assert response.status_code == 201, response.text
    bug: dict[str, Any] = response.json()
    return bug


def test_frames_become_sse_events_with_the_event_id_as_id() -> None:
    # A payload text that looks like the id key must not be taken for it.
    event = (
        b'{"type":"bug_report","event":"created",'
        b'"payload":{"t":"\\",\\"event_id\\":9}"},"event_id":42}'
    )
    frames = (
        json_frame({"type": "welcome", "payload": {}})
        + text_frame(event)
        + text_frame(b"x" * 70_000)
    )
    messages = frame_messages(frames)
    assert [len(m) for m in messages] == [31, len(event), 70_000]
    assert sse_event(messages[0]) == b'data: {"type":"welcome","payload":{}}\n\n'
    assert sse_event(messages[1]) == b"id: 42\ndata: " + event + b"\n\n"


async def test_the_stream_delivers_what_the_socket_delivers(server: LiveServer) -> None:
    admin = await server.create_user("root", Role.ADMIN)
    dev = await server.create_user("dev")
    outsider = await server.create_user("outsider")
    project_id = await _project(server, admin, dev)
    socket = await server.connect(dev)
    async with open_stream(server, dev) as stream, open_stream(server, outsider) as other:
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        welcome = await stream.next()
        assert welcome.data["type"] == "welcome" and welcome.id is None
        assert (await other.next()).data["type"] == "welcome"
        bug = await _bug(server, admin, project_id, "Crash on save")
        by_stream = await stream.until(lambda e: e.data.get("type") == "bug_report")
        by_socket = await socket.expect_event("bug_report", "created")
        assert by_stream.data == by_socket
        assert by_stream.id == str(by_socket["event_id"])
        assert by_stream.data["payload"]["id"] == bug["id"]
        with pytest.raises(TimeoutError):
            await other.until(lambda e: e.data.get("type") == "bug_report", timeout=0.5)
        assert stream.comments  # heartbeats (every 0.3 s here) are comments


async def test_a_stream_resumes_with_last_event_id(server: LiveServer) -> None:
    admin = await server.create_user("root", Role.ADMIN)
    project_id = await _project(server, admin)
    async with open_stream(server, admin) as stream:
        await stream.next()
        first = await _bug(server, admin, project_id, "one")
        seen = await stream.until(lambda e: e.data.get("type") == "bug_report")
        assert seen.data["payload"]["id"] == first["id"]
    missed = [await _bug(server, admin, project_id, title) for title in ("two", "three")]
    for how in ("header", "query"):
        request: dict[str, Any] = (
            {"headers": {"Last-Event-ID": seen.id}}
            if how == "header"
            else {"params": {"last_event_id": seen.id}}
        )
        async with open_stream(server, admin, **request) as resumed:
            assert (await resumed.next()).data["type"] == "welcome"
            got = [await resumed.until(lambda e: e.id is not None) for _ in missed]
            assert [e.data["payload"]["id"] for e in got] == [b["id"] for b in missed], how


async def test_a_stream_is_authenticated_like_the_socket(server: LiveServer) -> None:
    dev = await server.create_user("dev")
    async with open_stream(server) as anonymous:
        assert anonymous.response.status_code == 401
        await anonymous.response.aread()
        assert anonymous.response.json()["payload"]["code"] == "invalid_token"
    async with server.http(dev) as http:
        ticket = (await http.post("/api/v1/auth/ws-ticket")).json()["ticket"]
    async with open_stream(server, params={"ticket": ticket}) as by_ticket:
        assert by_ticket.response.status_code == 200
        welcome = await by_ticket.next()
        assert welcome.data["payload"]["user"]["id"] == dev.id
    async with open_stream(server, params={"ticket": ticket}) as again:
        assert again.response.status_code == 401  # a ticket is spent once


async def test_streams_count_toward_the_per_user_connection_limit() -> None:
    async with live_server(ws_max_connections_per_user=1) as server:
        dev = await server.create_user("dev")
        socket = await server.connect(dev)
        async with open_stream(server, dev) as second:
            assert second.response.status_code == 429
            await second.response.aread()
            payload = second.response.json()["payload"]
            assert (payload["code"], payload["limit"]) == ("too_many_connections", 1)
        await socket.close()
        await asyncio.sleep(0.2)
        async with open_stream(server, dev) as stream:
            assert (await stream.next()).data["type"] == "welcome"
            # Now the stream holds the user's one connection.
            payload, code = await refused(await server.connect(dev, welcome=False))
            assert (payload["code"], code) == ("too_many_connections", 4102)


async def test_messages_posted_for_a_stream_are_answered_on_it(server: LiveServer) -> None:
    admin = await server.create_user("root", Role.ADMIN)
    project_id = await _project(server, admin)
    async with open_stream(server, admin) as stream, server.http(admin) as http:
        welcome = await stream.next()
        connection = welcome.data["payload"]["connection_id"]
        command = {
            "type": "bug_report.create",
            "request_id": "r1",
            "payload": {"project_id": project_id, "title": "Filed over SSE"},
        }
        posted = await http.post(f"{STREAM}/{connection}", json=command)
        assert posted.status_code == 202
        ack = await stream.until(lambda e: e.data.get("type") == "ack")
        assert ack.data["payload"]["request_id"] == "r1"
        assert ack.data["payload"]["result"]["title"] == "Filed over SSE"
        bad = await http.post(f"{STREAM}/{connection}", json={"type": "nope", "request_id": 7})
        assert bad.status_code == 202
        error = await stream.until(lambda e: e.data.get("type") == "error")
        assert error.data["payload"]["code"] == "unknown_event_type"
        assert error.data["payload"]["request_id"] == 7
        assert (await http.post(f"{STREAM}/feedface", json={"type": "ping"})).status_code == 404
    other = await server.create_user("other")
    async with open_stream(server, admin) as stream, server.http(other) as http:
        connection = (await stream.next()).data["payload"]["connection_id"]
        # Another user cannot speak on this stream.
        assert (await http.post(f"{STREAM}/{connection}", json={"type": "ping"})).status_code == 404


async def test_a_server_shutdown_ends_a_stream_with_a_close_event() -> None:
    async with live_server() as server:
        dev = await server.create_user("dev")
        async with open_stream(server, dev) as stream:
            await stream.next()
            server.server.should_exit = True
            close = await stream.until(lambda e: e.event == "close", timeout=10)
    assert close.data == {"code": 1001, "reason": "server shutting down"}


async def test_a_reading_client_that_sends_nothing_is_not_cut_for_silence() -> None:
    """A plain EventSource only reads: taking the heartbeats keeps its stream open past the
    idle timeout that closes a silent socket (4100)."""
    async with live_server(ws_ping_interval_seconds=0.2, ws_idle_timeout_seconds=1.0) as server:
        dev = await server.create_user("dev")
        async with open_stream(server, dev) as stream:
            await stream.next()
            await asyncio.sleep(2.5)
            received = [stream.events.get_nowait() for _ in range(stream.events.qsize())]
            assert [e for e in received if e.event == "close"] == []
            assert len(stream.comments) >= 5
