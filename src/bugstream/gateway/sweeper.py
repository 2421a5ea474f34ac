"""The connection sweep, about once a second: heartbeats, idle and expired connections, and
the backlog and abuse bookkeeping that must move on even when no message arrives.

Each sweep pings connections due for a ping, closes those silent for longer than the idle
timeout (4100) and those whose token expired (4002), checks backlogs (4101) and forgets
stale abuse records. Times come from the injected clocks, so tests drive `sweep_once`
without waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bugstream.domain.protocol import CloseCode
from bugstream.gateway.abuse import AbuseMonitor
from bugstream.gateway.config import GatewayConfig
from bugstream.gateway.connection import Connection
from bugstream.gateway.hub import Hub

log = logging.getLogger("bugstream.gateway")

Revoke = Callable[[Connection, CloseCode, str], None]


class Sweeper:
    def __init__(
        self,
        *,
        hub: Hub,
        config: GatewayConfig,
        abuse: AbuseMonitor,
        revoke: Revoke,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.hub = hub
        self.config = config
        self.abuse = abuse
        self._revoke = revoke
        self._clock = clock
        self._wall_clock = wall_clock
        self._timer: asyncio.TimerHandle | None = None
        self._running = False

    @property
    def interval(self) -> float:
        return min(1.0, self.config.ping_interval / 4, self.config.idle_timeout / 4)

    def start(self) -> None:
        self._running = True
        self._schedule()

    def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._sweep)

    def _sweep(self) -> None:
        try:
            self.sweep_once()
        except Exception:
            # One failure must not end heartbeats and token expiry for good.
            log.exception("connection sweep failed; the next one runs as usual")
        finally:
            if self._running:
                self._schedule()

    def sweep_once(self) -> None:
        now = self._clock()
        wall = self._wall_clock()
        config = self.config
        for conn in self.hub.connections():
            if now - conn.last_activity > config.idle_timeout:
                self._revoke(conn, CloseCode.HEARTBEAT_TIMEOUT, "no heartbeat")
            elif wall >= conn.token_expires_at:
                self._revoke(conn, CloseCode.TOKEN_EXPIRED, "token expired")
            elif now - conn.last_ping >= config.ping_interval:
                conn.last_ping = now
                conn.sink.send_ping()
        self.hub.check_backlogs()
        self.abuse.sweep()
