"""A real bugstream server on a real loopback port, in the test's event loop, and WebSocket
clients for it (the `websockets` library over real sockets).

`live_server(ctx, **settings)` starts uvicorn exactly as `bugstream serve` does (the /ws
gateway protocol included) on a free port; `LiveServer.connect(token)` opens a client;
`StreamClient.next()` / `StreamClient.expect(...)` read JSON messages with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from bugstream.app import create_app
from bugstream.auth.tokens import TokenConfig, issue_token
from bugstream.domain.enums import Role
from bugstream.domain.models import User, UserCreate
from bugstream.gateway.gateway import Gateway
from bugstream.server import StreamingServer, uvicorn_config
from bugstream.services import users
from bugstream.services.context import ServiceContext
from bugstream.settings import Settings

TEST_SECRET = "live-tests-secret-0123456789abcdef0123456789"
TIMEOUT = 5.0


def live_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "jwt_secret": TEST_SECRET,
        "auto_migrate": False,
        "bootstrap_admin": False,
        "reminders_enabled": False,
        "host": "127.0.0.1",
        "port": 0,
        "relay_poll_interval_seconds": 0.05,
        "shutdown_grace_seconds": 2.0,
        "log_level": "WARNING",
        **overrides,
    }
    return Settings(**values)


class StreamClient:
    """A WebSocket client with JSON helpers; `welcome` is the server's first message."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any] | None) -> None:
        self.ws = ws
        self.welcome = welcome or {}

    @classmethod
    async def open(cls, url: str, *, welcome: bool = True, **kwargs: Any) -> StreamClient:
        """Connect to `url`; with `welcome` (default) read and check the welcome message."""
        client = cls(await websockets.connect(url, open_timeout=TIMEOUT, **kwargs), None)
        if welcome:
            first = await client.next()
            assert first["type"] == "welcome", first
            client.welcome = first["payload"]
        return client

    async def send(self, message: Any) -> None:
        await self.ws.send(
            message if isinstance(message, str | bytes) else orjson.dumps(message).decode()
        )

    async def command(
        self, kind: str, payload: dict[str, Any], request_id: str | int = "r"
    ) -> dict[str, Any]:
        """Send a command; return the ack or error that carries its request id."""
        await self.send({"type": kind, "request_id": request_id, "payload": payload})
        return await self.expect(lambda m: m.get("payload", {}).get("request_id") == request_id)

    async def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            raw = await self.ws.recv()
        message: dict[str, Any] = orjson.loads(raw)
        return message

    async def expect(self, match: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first message for which `match(message)` is true (others are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.next(max(0.01, deadline - loop.time()))
            if match(message):
                return message

    async def expect_event(self, kind: str, event: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await self.expect(
            lambda m: m.get("type") == kind and m.get("event") == event, timeout
        )

    async def events(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Every event that arrives until none has for `quiet` seconds."""
        found: list[dict[str, Any]] = []
        while True:
            try:
                message = await self.next(quiet)
            except TimeoutError:
                return found
            if "event_id" in message:
                found.append(message)

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int | None, str]:
        """Wait for the server to close; the close code and reason."""
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                async with asyncio.timeout(timeout):
                    await self.ws.recv()
        close = self.ws.close_code, self.ws.close_reason or ""
        return close

    async def close(self) -> None:
        await self.ws.close()


@dataclass
class LiveServer:
    server: uvicorn.Server
    settings: Settings
    port: int
    ctx: ServiceContext
    app: Any = None
    clients: list[StreamClient] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def gateway(self) -> Gateway:
        gateway: Gateway | None = self.app.state.runtime.gateway
        assert gateway is not None
        return gateway

    @property
    def tokens(self) -> TokenConfig:
        config: TokenConfig = self.app.state.token_config
        return config

    def token_for(self, user: User, **kwargs: Any) -> str:
        return issue_token(self.tokens, user_id=user.id, role=user.role.value, **kwargs)

    async def create_user(
        self, username: str, role: Role = Role.DEVELOPER, *, password: str = "password-1234"
    ) -> User:
        """An account made as the CLI makes it (no actor), for tests to sign in as."""
        data = UserCreate(
            username=username, email=f"{username}@example.com", password=password, role=role
        )
        return (await users.create_user(self.ctx, None, data)).value

    def http(self, user: User | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token_for(user)}"} if user else {}
        return httpx.AsyncClient(base_url=self.http_url, headers=headers, timeout=TIMEOUT)

    async def connect(
        self,
        user_or_token: User | str | None,
        *,
        query: str = "",
        welcome: bool = True,
        **kwargs: Any,
    ) -> StreamClient:
        """Open a WebSocket; with `welcome` (default) read and check the welcome message."""
        if isinstance(user_or_token, User):
            token: str | None = self.token_for(user_or_token)
        else:
            token = user_or_token
        url = self.ws_url + (f"?token={token}" if token else "")
        if query:
            url += ("&" if token else "?") + query
        client = await StreamClient.open(url, welcome=welcome, **kwargs)
        self.clients.append(client)
        return client


async def refused(client: StreamClient) -> tuple[dict[str, Any], int | None]:
    """A refused connection: its one error payload and the close code that follows."""
    message = await client.next()
    assert message["type"] == "error", message
    code, _ = await client.closed()
    payload: dict[str, Any] = message["payload"]
    return payload, code


async def pong(client: StreamClient) -> None:
    """The connection answers: a ping gets its pong (events queued before it are passed)."""
    await client.send({"type": "ping"})
    assert (await client.expect(lambda m: m["type"] != "bug_report"))["type"] == "pong"


async def _wait_started(server: uvicorn.Server) -> None:
    for _ in range(500):
        if server.started:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("server did not start")


@asynccontextmanager
async def live_server(
    ctx: ServiceContext | None = None, **overrides: Any
) -> AsyncIterator[LiveServer]:
    """A running server. `overrides` are `Settings` fields. With `ctx` (a service context
    on a database the caller migrated) the server uses it; without, it builds its own from
    the settings, migrates its database, and keeps it in a temporary directory unless
    `database_url` or `data_dir` says otherwise."""
    scratch = None
    if ctx is None:
        overrides.setdefault("auto_migrate", True)
        if "database_url" not in overrides and "data_dir" not in overrides:
            scratch = tempfile.TemporaryDirectory(prefix="bugstream-live-")
            overrides["data_dir"] = scratch.name
    settings = live_settings(**overrides)
    app = create_app(settings, ctx=ctx)
    config = uvicorn_config(app, settings)
    server = StreamingServer(config, app)
    task = asyncio.create_task(server.serve())
    try:
        await _wait_started(server)
        port = server.servers[0].sockets[0].getsockname()[1]
        live = LiveServer(server, settings, port, ctx or app.state.runtime.ctx, app=app)
        try:
            yield live
        finally:
            for client in live.clients:
                with contextlib.suppress(Exception):
                    await client.close()
    finally:
        server.should_exit = True
        async with asyncio.timeout(15):
            await task
        if scratch is not None:
            scratch.cleanup()
