"""The sweeper with its clocks injected: pings when due, closes silent connections (4100) and
expired tokens (4002), and keeps running after a failing sweep. No wall-clock waiting."""

from __future__ import annotations

import asyncio

import pytest

from bugstream.domain.enums import Role
from bugstream.domain.protocol import CloseCode
from bugstream.gateway.abuse import AbuseMonitor
from bugstream.gateway.config import GatewayConfig
from bugstream.gateway.connection import ClientInfo, Connection
from bugstream.gateway.hub import Hub
from bugstream.gateway.sweeper import Sweeper
from tests.gateway.test_coalescing_unit import Clock, WriteLog

CONFIG = GatewayConfig(ping_interval=30.0, idle_timeout=60.0)
TOKEN_EXPIRES = 5_000.0  # wall-clock seconds


class PingLog(WriteLog):
    def __init__(self) -> None:
        super().__init__()
        self.pings = 0

    def send_ping(self) -> None:
        self.pings += 1


class World:
    def __init__(self) -> None:
        self.clock = Clock()  # monotonic, starts at 100
        self.wall = Clock()
        self.wall.now = 1_000.0
        self.revoked: list[tuple[Connection, CloseCode]] = []
        self.hub = Hub(position=0, revoke=self.revoke, max_backlog_bytes=1 << 20)
        self.abuse = AbuseMonitor(
            threshold=20,
            window=60,
            block_seconds=300,
            clock=self.clock,
            on_security_event=lambda kind, key, details: None,
        )
        self.sweeper = Sweeper(
            hub=self.hub,
            config=CONFIG,
            abuse=self.abuse,
            revoke=self.revoke,
            clock=self.clock,
            wall_clock=self.wall,
        )
        self.sink = PingLog()
        info = ClientInfo("c1", 7, "u7", "127.0.0.1", 0.0)
        self.conn = Connection(
            info, Role.DEVELOPER, self.sink, now=self.clock.now, token_expires_at=TOKEN_EXPIRES
        )
        self.hub.register(self.conn, Role.DEVELOPER, {1}, as_of=0)

    def revoke(self, conn: Connection, code: CloseCode, reason: str) -> None:
        self.revoked.append((conn, code))
        conn.closed = True
        self.hub.unregister(conn)

    def at(self, seconds: float) -> None:
        """Both clocks `seconds` after the connection opened, then one sweep."""
        self.clock.now = 100.0 + seconds
        self.wall.now = 1_000.0 + seconds
        self.sweeper.sweep_once()


def test_pings_when_the_interval_has_passed_and_not_before() -> None:
    world = World()
    world.at(29.9)
    assert world.sink.pings == 0
    world.at(30.0)
    assert world.sink.pings == 1
    world.at(45.0)
    assert world.sink.pings == 1  # the next one is due at 60
    assert world.revoked == []


def test_a_connection_silent_past_the_idle_timeout_is_closed_with_4100() -> None:
    world = World()
    world.at(59.0)
    world.conn.last_activity = world.clock.now  # a pong: it is alive
    world.at(118.0)
    assert world.revoked == []
    world.at(119.5)
    assert world.revoked == [(world.conn, CloseCode.HEARTBEAT_TIMEOUT)]


def test_an_expired_token_closes_with_4002_by_the_wall_clock() -> None:
    world = World()
    world.conn.token_expires_at = 1_000.0 + 10.0
    world.at(9.9)
    assert world.revoked == []
    world.at(10.0)
    assert world.revoked == [(world.conn, CloseCode.TOKEN_EXPIRED)]


async def test_a_failing_sweep_is_logged_and_the_next_one_is_scheduled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()

    def broken() -> None:
        raise RuntimeError("a bug in one sweep")

    world.abuse.sweep = broken  # type: ignore[method-assign]
    world.sweeper.start()
    try:
        world.sweeper._sweep()  # what the timer calls
        assert "connection sweep failed" in caplog.text
        timer = world.sweeper._timer
        assert timer is not None and not timer.cancelled()
        assert timer.when() > asyncio.get_running_loop().time()
    finally:
        world.sweeper.stop()
    assert world.sweeper._timer is None
