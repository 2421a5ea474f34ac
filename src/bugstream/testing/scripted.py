"""A WebSocket server on a real loopback socket that follows a script, one step per
connection attempt: refuse the upgrade, close with a code (before or after the welcome), or
welcome and answer messages. It lets the SDK's reconnect rules be tested exactly, with the
SDK's backoff clock replaced, without waiting for real servers to start and stop.

For applications built on the SDK: script what the server does and test how the application
copes (a refused connection, a close with 4001, a resync) with no bugstream server at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

Reply = Callable[[dict[str, Any]], list[dict[str, Any]] | None]


@dataclass(frozen=True)
class Refuse:
    """Refuse the WebSocket upgrade with an HTTP status."""

    status: int = 503


@dataclass(frozen=True)
class Close:
    """Accept, send an error message (as the gateway does), close with `code`; with
    `welcome`, send a welcome first (and any `events`)."""

    code: int
    welcome: bool = False
    error_code: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    latest_event_id: int = 0


@dataclass(frozen=True)
class Serve:
    """Welcome, then answer each message with `reply(message)` (None: no answer;
    `[{"close": code}]`: close with that code) until the client leaves."""

    reply: Reply | None = None
    latest_event_id: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Drop:
    """Welcome, then cut the TCP connection without a close frame (a network failure)."""


Step = Refuse | Close | Serve | Drop


@dataclass
class Attempt:
    token: str | None
    last_event_id: int | None


def welcome(connection_id: str, latest_event_id: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "type": "welcome",
        "payload": {
            "connection_id": connection_id,
            "user": {"id": 1, "username": "alice", "role": "developer"},
            "server_time": now.isoformat().replace("+00:00", "Z"),
            "latest_event_id": latest_event_id,
            "token_expires_at": (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "heartbeat": {"ping_interval": 30, "timeout": 60},
        },
    }


def ack(message: dict[str, Any], result: Any) -> dict[str, Any]:
    return {
        "type": "ack",
        "payload": {
            "request_id": message.get("request_id"),
            "command": message["type"],
            "result": result,
        },
    }


class ScriptedServer:
    def __init__(self, script: list[Step]) -> None:
        self.script = script
        self.attempts: list[Attempt] = []
        self.received: list[dict[str, Any]] = []
        #: Requests for any path but /ws (the SSE fallback's stream), answered 404.
        self.other_requests: list[str] = []
        self.port = 0
        self._steps: dict[int, Step] = {}

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def _step(self) -> Step:
        index = len(self.attempts) - 1
        return self.script[index] if index < len(self.script) else Refuse(503)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if not urlsplit(request.path).path.endswith("/ws"):
            # A server without the SSE fallback (an SDK on "auto" may try it): not a step.
            self.other_requests.append(request.path)
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        auth = request.headers.get("Authorization", "")
        query = parse_qs(urlsplit(request.path).query)
        last = query.get("last_event_id")
        self.attempts.append(
            Attempt(
                token=auth.removeprefix("Bearer ") if auth else None,
                last_event_id=int(last[0]) if last else None,
            )
        )
        step = self._step()
        if isinstance(step, Refuse):
            return connection.respond(HTTPStatus(step.status), "refused\n")
        self._steps[id(connection)] = step
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        step = self._steps.pop(id(ws))
        connection_id = f"conn{len(self.attempts)}"
        if isinstance(step, Close):
            if step.welcome:
                await ws.send(json.dumps(welcome(connection_id, step.latest_event_id)))
                for event in step.events:
                    await ws.send(json.dumps(event))
            if step.error_code:
                error = {"code": step.error_code, "message": f"scripted {step.error_code}"}
                await ws.send(json.dumps({"type": "error", "payload": error}))
            await ws.close(step.code, "scripted")
            return
        if isinstance(step, Drop):
            await ws.send(json.dumps(welcome(connection_id, 0)))
            ws.transport.abort()
            return
        assert isinstance(step, Serve)
        await ws.send(json.dumps(welcome(connection_id, step.latest_event_id)))
        for event in step.events:
            await ws.send(json.dumps(event))
        with contextlib.suppress(Exception):
            async for raw in ws:
                message = json.loads(raw)
                self.received.append(message)
                replies = step.reply(message) if step.reply else None
                for reply in replies or []:
                    if "close" in reply:
                        await ws.close(reply["close"], "scripted")
                        return
                    await ws.send(json.dumps(reply))


@asynccontextmanager
async def scripted_server(script: list[Step]) -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer(script)
    async with serve(
        server._handler, "127.0.0.1", 0, process_request=server._process_request
    ) as ws_server:
        server.port = next(iter(ws_server.sockets)).getsockname()[1]
        yield server


def event(event_id: int, title: str = "bug") -> dict[str, Any]:
    """A bug_report.created event as the gateway sends it."""
    now = "2026-01-05T09:00:00Z"
    return {
        "type": "bug_report",
        "event": "created",
        "event_id": event_id,
        "payload": {
            "id": event_id,
            "title": title,
            "description": "",
            "status": "open",
            "priority": "medium",
            "assignee_id": None,
            "reporter_id": 1,
            "project_id": 1,
            "created_at": now,
            "updated_at": now,
        },
    }


class FakeSleep:
    """The backoff's clock: records each delay and returns at once, or, when `gate` is
    cleared, waits until the test sets it."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.sleeping = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.sleeping.set()
        await self.gate.wait()
        self.sleeping.clear()
        await asyncio.sleep(0)
