"""A /ws connection's life: the handshake (token, origin, path), the welcome, token refresh
and expiry, the heartbeat, the tracking of connected clients, and graceful shutdown."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

from bugstream.auth.tokens import TokenConfig, issue_token
from bugstream.domain.enums import Role
from bugstream.store.outbox import latest_event_id
from tests.support.factory import Factory
from tests.support.live import LiveServer, live_server, pong, refused
from tests.support.net import free_port
from tests.support.waiting import wait_until
from tests.test_cli import clean_env


async def handshake_status(live: LiveServer, url: str, **kwargs: Any) -> int:
    """The HTTP status of a refused handshake, or 101 if it was accepted."""
    try:
        ws = await websockets.connect(url, open_timeout=5, **kwargs)
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1] + "+00:00")


# ---- authentication at the handshake -----------------------------------------------------------


async def test_bad_tokens_get_invalid_token_then_4001(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        forged = issue_token(
            TokenConfig(secret="another-secret-another-secret-0123456789"),
            user_id=dev.id,
            role=dev.role.value,
        )
        unknown_user = issue_token(live.tokens, user_id=987_654, role="admin")
        cases = {
            "missing": None,
            "garbage": "garbage-token",
            "not base64": "a.b.c",
            "wrong signature": forged,
            "unknown user": unknown_user,
        }
        for name, token in cases.items():
            payload, code = await refused(await live.connect(token, welcome=False))
            assert set(payload) == {"code", "message"}, name
            assert payload["code"] == "invalid_token", (name, payload)
            assert code == 4001, name
            if token:
                assert token not in payload["message"]
        assert live.gateway.hub.connection_count == 0


async def test_expired_token_gets_token_expired_then_4002(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        expired = live.token_for(dev, ttl_seconds=60, now=datetime.now(UTC) - timedelta(hours=1))
        payload, code = await refused(await live.connect(expired, welcome=False))
        assert set(payload) == {"code", "message"}
        assert payload["code"] == "token_expired"
        assert code == 4002


async def test_token_in_authorization_header(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        headers = {"Authorization": f"Bearer {live.token_for(dev)}"}
        client = await live.connect(None, additional_headers=headers)
        assert client.welcome["user"]["id"] == dev.id
        await pong(client)
        # A bad header token is refused even when the query has none.
        bad = {"Authorization": "Bearer not-a-token"}
        payload, code = await refused(
            await live.connect(None, welcome=False, additional_headers=bad)
        )
        assert (payload["code"], code) == ("invalid_token", 4001)


async def test_welcome_has_every_field(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    await factory.project(dev)  # some events, so that latest_event_id is not trivially 0
    async with factory.ctx.db.read() as repos:
        latest = await latest_event_id(repos.conn)
    assert latest > 0
    settings = {
        "ws_ping_interval_seconds": 12.5,
        "ws_idle_timeout_seconds": 40.0,
        "ws_max_message_bytes": 4096,
        "ws_max_connections_per_user": 2,
        "ws_rate_limit_capacity": 30,
        "ws_rate_limit_refill_per_second": 0.5,
    }
    async with live_server(factory.ctx, **settings) as live:
        issued = datetime.now(UTC)
        token = live.token_for(dev, ttl_seconds=900, now=issued)
        before = datetime.now(UTC)
        client = await live.connect(token)
        after = datetime.now(UTC)
        welcome = client.welcome
        assert set(welcome) == {
            "connection_id",
            "user",
            "server_time",
            "latest_event_id",
            "token_expires_at",
            "heartbeat",
            "limits",
            "subscription",
        }
        assert isinstance(welcome["connection_id"], str) and len(welcome["connection_id"]) >= 8
        assert welcome["user"] == {"id": dev.id, "username": dev.username, "role": "developer"}
        server_time = parse_time(welcome["server_time"])
        assert before - timedelta(seconds=1) <= server_time <= after + timedelta(seconds=1)
        assert welcome["latest_event_id"] == latest
        expected_exp = datetime.fromtimestamp(int(issued.timestamp()) + 900, UTC)
        assert parse_time(welcome["token_expires_at"]) == expected_exp
        assert welcome["heartbeat"] == {"ping_interval": 12.5, "timeout": 40.0}
        assert welcome["limits"] == {
            "max_message_bytes": 4096,
            "max_connections_per_user": 2,
            "rate_limit": {"capacity": 30, "refill_per_second": 0.5},
        }
        assert welcome["subscription"] == {"all": True}
        # Each connection has its own id.
        second = await live.connect(dev)
        assert second.welcome["connection_id"] != welcome["connection_id"]


# ---- origin and path ---------------------------------------------------------------------------


async def test_origin_checks_in_development(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, ws_allowed_origins=["https://app.example.com"]) as live:
        url = f"{live.ws_url}?token={live.token_for(dev)}"
        expected = {
            "https://evil.example.com": 403,
            "null": 403,
            "https://app.example.com.evil.example": 403,
            "http://app.example.com": 403,  # another scheme is another origin
            "https://app.example.com": 101,  # configured
            f"http://127.0.0.1:{live.port}": 101,  # same origin
            "http://localhost:3000": 101,  # localhost, in development
            "http://127.0.0.1:5173": 101,
        }
        for origin, status in expected.items():
            got = await handshake_status(live, url, origin=Origin(origin))
            assert got == status, origin
        # No Origin header at all: not a browser, nothing to protect against.
        assert await handshake_status(live, url) == 101


async def test_origin_refused_body_says_why(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        with pytest.raises(InvalidStatus) as exc:
            await live.connect(dev, origin=Origin("https://evil.example.com"))
        assert exc.value.response.status_code == 403
        assert b"origin" in exc.value.response.body
        assert live.gateway.hub.connection_count == 0


async def test_production_allows_only_configured_origins(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(
        factory.ctx,
        env="production",
        behind_tls_proxy=True,
        ws_allowed_origins=["https://app.example.com"],
    ) as live:
        url = f"{live.ws_url}?token={live.token_for(dev)}"
        proxied = {"additional_headers": {"X-Forwarded-Proto": "https"}}
        for origin, status in {
            "http://localhost:3000": 403,
            "https://evil.example.com": 403,
            "https://app.example.com": 101,
        }.items():
            got = await handshake_status(live, url, origin=Origin(origin), **proxied)
            assert got == status, origin


async def test_wrong_path_is_404(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        token = live.token_for(dev)
        base = f"ws://127.0.0.1:{live.port}"
        for path in ("/other", "/ws/extra", "/api/v1/ws", "/"):
            assert await handshake_status(live, f"{base}{path}?token={token}") == 404, path
        assert await handshake_status(live, f"{base}/ws?token={token}") == 101


# ---- token refresh and expiry ------------------------------------------------------------------


async def test_token_expiry_closes_at_exp_unless_refreshed(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    watched = await factory.project(dev)
    ignored = await factory.project(dev)
    async with live_server(
        factory.ctx, ws_ping_interval_seconds=0.2, ws_idle_timeout_seconds=30
    ) as live:
        issued = datetime.now(UTC)
        exp = int(issued.timestamp()) + 2  # between 1 and 2 s from now
        doomed = await live.connect(live.token_for(dev, ttl_seconds=2, now=issued))
        kept = await live.connect(live.token_for(dev, ttl_seconds=2, now=issued))
        assert parse_time(kept.welcome["token_expires_at"]).timestamp() == exp

        subscribed = await kept.command("subscribe", {"projects": [watched.id]}, "sub")
        assert subscribed["type"] == "ack"
        narrowed = {"all": False, "projects": [watched.id], "bug_reports": []}
        assert subscribed["payload"]["result"] == narrowed
        fresh = live.token_for(dev, ttl_seconds=3600)
        refreshed = await kept.command("auth", {"token": fresh}, "refresh")
        assert refreshed["type"] == "ack", refreshed
        assert refreshed["payload"]["command"] == "auth"
        new_exp = parse_time(refreshed["payload"]["result"]["token_expires_at"]).timestamp()
        assert new_exp > exp + 3000

        # The other one is closed at its exp: token_expired, then 4002.
        message = await doomed.next(timeout=5)
        closed_at = time.time()
        assert message["type"] == "error"
        assert set(message["payload"]) == {"code", "message"}
        assert message["payload"]["code"] == "token_expired"
        code, _ = await doomed.closed()
        assert code == 4002
        assert exp - 0.05 <= closed_at <= exp + 0.75, (closed_at, exp)

        # The refreshed one is open past the old exp, still narrowed, and gets events.
        await asyncio.sleep(max(0.0, exp + 0.3 - time.time()))
        await pong(kept)
        assert kept.ws.close_code is None
        async with live.http(dev) as http:
            for project in (ignored, watched):
                response = await http.post(
                    "/api/v1/bugs", json={"project_id": project.id, "title": f"in {project.id}"}
                )
                assert response.status_code == 201
        events = await kept.events()
        assert [(e["type"], e["event"], e["payload"]["project_id"]) for e in events] == [
            ("bug_report", "created", watched.id)
        ]


async def test_auth_with_a_bad_token_is_refused_and_the_connection_stays(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    other = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        client = await live.connect(dev)
        cases = {
            "another user's": (live.token_for(other), "forbidden"),
            "garbage": ("garbage", "invalid_token"),
            "expired": (
                live.token_for(dev, ttl_seconds=5, now=datetime.now(UTC) - timedelta(hours=1)),
                "token_expired",
            ),
        }
        for name, (token, code) in cases.items():
            answer = await client.command("auth", {"token": token}, request_id=name)
            assert answer["type"] == "error", (name, answer)
            assert set(answer["payload"]) == {"code", "message", "request_id"}
            assert answer["payload"]["code"] == code, name
            await pong(client)
        # The connection is still that user's, with its original expiry.
        conn = live.gateway.hub.connections_of(dev.id)[0]
        assert conn.user_id == dev.id
        expected_exp = parse_time(client.welcome["token_expires_at"]).timestamp()
        assert conn.token_expires_at == expected_exp
        assert live.gateway.hub.connections_of(other.id) == []


# ---- heartbeat ---------------------------------------------------------------------------------


@dataclass
class RawClient:
    """A WebSocket client over a bare socket, to behave badly on purpose: it answers pings
    only if told to, and records every frame the server sends."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: ClientProtocol
    answer_pings: bool
    frames: list[Frame] = field(default_factory=list)
    opened_at: float = 0.0

    @classmethod
    async def open(cls, url: str, *, answer_pings: bool) -> RawClient:
        uri = parse_uri(url)
        reader, writer = await asyncio.open_connection(uri.host, uri.port)
        protocol = ClientProtocol(uri)
        protocol.send_request(protocol.connect())
        writer.write(b"".join(protocol.data_to_send()))
        client = cls(reader, writer, protocol, answer_pings)
        while True:
            events = await client._read()
            response = [e for e in events if isinstance(e, Response)]
            if response:
                assert response[0].status_code == 101
                client.opened_at = time.monotonic()
                return client

    async def _read(self) -> list[Any]:
        data = await asyncio.wait_for(self.reader.read(65536), 5)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        events = self.protocol.events_received()
        self.frames.extend(e for e in events if isinstance(e, Frame))
        outgoing = self.protocol.data_to_send()  # pongs, close replies
        if self.answer_pings:
            self.writer.write(b"".join(outgoing))
        return events

    async def until_closed(self) -> tuple[int, float]:
        """Read until the server's close frame: its code and when it came (monotonic)."""
        while True:
            await self._read()
            for frame in self.frames:
                if frame.opcode is Opcode.CLOSE:
                    return Close.parse(frame.data).code, time.monotonic()

    def pings(self) -> int:
        return sum(1 for f in self.frames if f.opcode is Opcode.PING)

    def close(self) -> None:
        self.writer.close()


async def test_heartbeat_pings_and_closes_silent_clients_with_4100(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    idle = 0.6
    async with live_server(
        factory.ctx, ws_ping_interval_seconds=0.15, ws_idle_timeout_seconds=idle
    ) as live:
        url = f"{live.ws_url}?token={live.token_for(dev)}"
        silent = await RawClient.open(url, answer_pings=False)
        answering = await RawClient.open(url, answer_pings=True)
        # Reads (and so answers pings) until the server closes it, which it must not.
        answering_closed = asyncio.create_task(answering.until_closed())
        # The websockets client answers pings by itself; it sends none of its own here.
        library = await live.connect(dev, ping_interval=None)
        try:
            code, closed_at = await silent.until_closed()
            assert code == 4100
            lived = closed_at - silent.opened_at
            assert idle - 0.05 <= lived <= idle + 0.5, lived
            # It was pinged before being given up on.
            assert silent.pings() >= 2
            # Clients that answer pings outlive the idle timeout several times over.
            await asyncio.sleep(2 * idle)
            assert not answering_closed.done(), "the answering client was closed"
            assert answering.pings() >= 4
            await pong(library)
            assert len(live.gateway.hub.connections_of(dev.id)) == 2
        finally:
            answering_closed.cancel()
            silent.close()
            answering.close()


# ---- tracking ----------------------------------------------------------------------------------


async def test_gateway_tracks_every_client(factory: Factory) -> None:
    alice = await factory.user(Role.DEVELOPER)
    bob = await factory.user(Role.REPORTER)
    async with live_server(factory.ctx) as live:
        hub = live.gateway.hub
        assert hub.connection_count == 0
        before = time.time()
        a1 = await live.connect(alice)
        a2 = await live.connect(alice)
        b1 = await live.connect(bob)
        after = time.time()
        assert hub.connection_count == 3
        seen = {
            (c.info.connection_id, c.info.user_id, c.info.username, c.info.remote_address)
            for c in hub.connections()
        }
        assert seen == {
            (a1.welcome["connection_id"], alice.id, alice.username, "127.0.0.1"),
            (a2.welcome["connection_id"], alice.id, alice.username, "127.0.0.1"),
            (b1.welcome["connection_id"], bob.id, bob.username, "127.0.0.1"),
        }
        for conn in hub.connections():
            assert before - 0.01 <= conn.info.connected_at <= after + 0.01

        # Last activity moves when the client says something.
        (b_conn,) = hub.connections_of(bob.id)
        active_before = b_conn.last_activity
        await asyncio.sleep(0.02)
        await pong(b1)
        assert b_conn.last_activity > active_before

        await a1.close()
        await wait_until(lambda: hub.connection_count == 2)
        assert [c.info.connection_id for c in hub.connections_of(alice.id)] == [
            a2.welcome["connection_id"]
        ]
        await a2.close()
        await b1.close()
        await wait_until(lambda: hub.connection_count == 0)
        assert hub.connections() == []


# ---- graceful shutdown (a real `bugstream serve` process) --------------------------------------


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    output: list[str]
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}/ws"

    def admin_password(self) -> str:
        for line in self.output:
            if "password:" in line:
                return line.split("password:", 1)[1].strip()
        raise AssertionError("no admin password in:\n" + "".join(self.output))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def _drain(stream: IO[str], output: list[str]) -> None:
    for line in stream:
        output.append(line)


def start_serve(workdir: Path, *args: str, **env: str) -> Served:
    """`bugstream serve` in a clean environment with its data in `workdir`; returns once it
    listens (its output is collected by a thread from then on)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bugstream.cli", "serve", "--port", str(port), *args],
        cwd=workdir,
        env=clean_env(
            BUGSTREAM_DATA_DIR=str(workdir / "data"),
            BUGSTREAM_REMINDERS_ENABLED="false",
            **env,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if "bugstream is running" in line:
            scheme = "https" if "https://" in line else "http"
            threading.Thread(target=_drain, args=(process.stdout, output), daemon=True).start()
            return Served(process, port, output, scheme)
    process.kill()
    process.wait()
    raise AssertionError("server did not start:\n" + "".join(output))


def admin_token(served: Served, **client: Any) -> str:
    response = httpx.post(
        f"{served.url}/api/v1/auth/token",
        json={"username": "admin", "password": served.admin_password()},
        **client,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = start_serve(tmp_path, BUGSTREAM_WS_MAX_CONNECTIONS_PER_USER="5")
    try:
        yield server
    finally:
        server.stop()


async def test_sigterm_closes_every_client_with_1001_and_exits_promptly(served: Served) -> None:
    token = await asyncio.to_thread(admin_token, served)
    clients = [
        await websockets.connect(f"{served.ws_url}?token={token}", open_timeout=5) for _ in range(4)
    ]
    for ws in clients:
        welcome = await asyncio.wait_for(ws.recv(), 5)
        assert '"welcome"' in str(welcome)

    signalled = time.monotonic()
    served.process.send_signal(signal.SIGTERM)

    async def close_code(ws: Any) -> int | None:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed:
            pass
        code: int | None = ws.close_code
        return code

    codes = await asyncio.gather(*(close_code(ws) for ws in clients))
    assert codes == [1001] * len(clients)
    returncode = await asyncio.to_thread(served.process.wait, 10)
    elapsed = time.monotonic() - signalled
    assert elapsed < 10, elapsed
    # uvicorn re-raises SIGTERM after a graceful shutdown, so the status tells why it ended.
    assert returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in "".join(served.output)


async def test_a_failing_sweep_does_not_stop_heartbeats_for_good(
    factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One exception in the sweeper used to end heartbeats and token expiry (issue 11.6)."""
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(
        factory.ctx, ws_ping_interval_seconds=0.15, ws_idle_timeout_seconds=0.6
    ) as live:
        failures = 0
        sweep = live.gateway.abuse.sweep

        def fails_twice() -> None:
            nonlocal failures
            if failures < 2:
                failures += 1
                raise RuntimeError("a bug in one sweep")
            sweep()

        monkeypatch.setattr(live.gateway.abuse, "sweep", fails_twice)
        silent = await RawClient.open(
            f"{live.ws_url}?token={live.token_for(dev)}", answer_pings=False
        )
        code, _ = await silent.until_closed()
        assert failures == 2
        assert code == 4100  # the silent client was still found out
