"""Which transport the next connection uses, WebSocket or the SSE fallback, and dialing it.

`transport="auto"` (the default) starts on WebSocket and falls back to SSE when WebSockets
look blocked, before any WebSocket was ever welcomed:
- at once, when the upgrade is refused with a final HTTP status (4xx but 408): what a proxy
  that forbids WebSockets answers, or a server whose `/ws` a proxy stripped of its upgrade;
- after `fallback_after` attempts in a row that failed without reaching a WebSocket: a
  timeout, a reset, a 502 or 504, a connection dropped before the welcome.
A refused TCP connection or an unknown host does not count (the stream lives at the same
address), nor does a 503 (the server answered: it is busy or restarting), nor a close frame
(the server spoke WebSocket). Once on SSE the client stays there until it is closed: a
network that blocked WebSockets once is not probed again on every reconnect.
"""

from __future__ import annotations

import logging
import socket
import ssl as ssl_module
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx

from bugstream.client.errors import ConnectionRejected
from bugstream.client.outcome import ABNORMAL_CLOSURE, Outcome, dial, http_retryable
from bugstream.client.sse import STREAM_PATH, dial_sse, http_client

log = logging.getLogger("bugstream.client")

Transport = Literal["auto", "websocket", "sse"]
TRANSPORTS = ("auto", "websocket", "sse")


class Link(Protocol):
    """What the client needs of an open connection: a websockets `ClientConnection`, or an
    `SseLink`. Both end with `websockets.exceptions.ConnectionClosed`."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DialOptions:
    open_timeout: float
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float
    ssl: ssl_module.SSLContext | None


class Dialer:
    """Opens each connection on the transport in use, and decides when to fall back."""

    def __init__(self, mode: Transport, fallback_after: int, options: DialOptions) -> None:
        if mode not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, not {mode!r}")
        if fallback_after < 1:
            raise ValueError("fallback_after must be at least 1")
        self.mode = mode
        self.fallback_after = fallback_after
        self.options = options
        self.using_sse = mode == "sse"
        #: A WebSocket was welcomed or closed by the server: WebSockets get through here.
        self.websocket_worked = False
        self._blocked_attempts = 0
        self._upgrade_refused: int | None = None  # the status that made it fall back
        self._http: httpx.AsyncClient | None = None  # the SSE streams' and posts'

    @property
    def transport(self) -> Literal["websocket", "sse"]:
        return "sse" if self.using_sse else "websocket"

    async def dial(
        self, url: str, token: str, current_token: Callable[[], str | None]
    ) -> Link | Outcome:
        """Open the connection (`url` is the `/ws` URL with its query), or how that failed."""
        options = self.options
        if self.using_sse:
            if self._http is None:
                self._http = http_client(url, options.ssl, options.open_timeout)
            return await dial_sse(
                self._http,
                url,
                current_token,
                open_timeout=options.open_timeout,
                idle_grace=options.ping_timeout,
            )
        return await dial(
            url,
            token,
            open_timeout=options.open_timeout,
            ping_interval=options.ping_interval,
            ping_timeout=options.ping_timeout,
            close_timeout=options.close_timeout,
            ssl=options.ssl,
        )

    async def aclose(self) -> None:
        """Release what the session held (the SSE fallback's HTTP connections)."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def falls_back(self, outcome: Outcome) -> bool:
        """Record how a WebSocket attempt ended; True when the next attempt is the first on
        SSE (to be made at once)."""
        if self.using_sse or not outcome.dialed:
            return False
        if outcome.welcomed or outcome.close_code not in (None, ABNORMAL_CLOSURE):
            self.websocket_worked = True
        if self.mode != "auto" or self.websocket_worked:
            return False
        status = outcome.http_status
        if status is not None and not http_retryable(status):
            self._blocked_attempts = self.fallback_after  # the upgrade itself was refused
            self._upgrade_refused = status
        elif _looks_blocked(outcome):
            self._blocked_attempts += 1
        else:
            self._blocked_attempts = 0
        if self._blocked_attempts < self.fallback_after:
            return False
        self.using_sse = True
        log.warning("WebSockets do not get through; using the SSE fallback")
        return True

    def refused(self, status: int) -> ConnectionRejected:
        """The error for a final HTTP refusal of the connection (`status`)."""
        if not self.using_sse:
            said = f"the server refused the WebSocket upgrade with HTTP {status}"
        elif self._upgrade_refused is not None:
            said = (
                f"the WebSocket upgrade was refused with HTTP {self._upgrade_refused}, and the "
                f"SSE fallback ({STREAM_PATH}) with HTTP {status}"
            )
        else:
            said = f"the server refused the event stream ({STREAM_PATH}) with HTTP {status}"
        return ConnectionRejected(f"{said}; not reconnecting", http_status=status)


def _looks_blocked(outcome: Outcome) -> bool:
    if outcome.http_status is not None:
        return outcome.http_status != 503
    if isinstance(outcome.exception, ConnectionRefusedError | socket.gaierror):
        return False  # nothing answers there at all: the stream would not either
    return outcome.exception is not None or outcome.close_code == ABNORMAL_CLOSURE
