"""`Client`: one reconnecting, resuming session with a bugstream server's event stream.

    async with Client("ws://localhost:8000/ws", token_provider=get_token) as client:
        async for event in client.events():
            ...

On its own it reconnects with backoff and jitter, obeys the close-code ranges, resumes
without gaps or duplicates, refreshes its token on the open connection and answers commands
by request id (docs/integration.md). Its parts: `tokens` and `refresh` (the token),
`requests` (commands waiting for answers), `inbound` (messages after the welcome),
`delivery` (the queue the application reads), `outcome` (how an attempt ended),
`transport` (WebSocket or the SSE fallback: `sse`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random as random_module
import ssl as ssl_module
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed

from bugstream.client.backoff import Backoff
from bugstream.client.delivery import Delivery, Handler, ResyncHandler, SkippedHandler
from bugstream.client.errors import (
    ClientClosed,
    ClientError,
    CommandTimeout,
    ReconnectFailed,
)
from bugstream.client.events import Event
from bugstream.client.inbound import route
from bugstream.client.outcome import ABNORMAL_CLOSURE, Outcome, http_retryable
from bugstream.client.presence import Presence
from bugstream.client.refresh import refresh_on_connection
from bugstream.client.requests import PendingRequests
from bugstream.client.state import ConnectionState, Phase, StateCallback, StateReporter
from bugstream.client.subscription import Subscription, Subscriptions
from bugstream.client.tokens import TokenKeeper, TokenProvider
from bugstream.client.transport import Dialer, DialOptions, Link, Transport
from bugstream.client.wire import (
    decode,
    message_limit,
    parse_time,
    payload_of,
    retrieve,
    stream_url,
    with_query,
)
from bugstream.domain.protocol import ServerMessage, is_terminal, needs_new_token

log = logging.getLogger("bugstream.client")

Sleep = Callable[[float], Awaitable[None]]


class Client:
    """A bugstream client (docs/integration.md). Give `token` (a JWT), or `token_provider`
    (a sync or async callable returning one: the client then refreshes tokens by itself), or
    both. `last_event_id` resumes a stream a previous run left (persist
    `client.processed_event_id` to use it). `transport`: "auto" (WebSocket, and the SSE
    fallback where WebSockets are blocked: client/transport.py), "websocket" or "sse".
    `sleep` and `random` are the backoff's clock and jitter source (tests replace them)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        last_event_id: int | None = None,
        backoff: Backoff | None = None,
        on_resync: ResyncHandler | None = None,
        on_skipped: SkippedHandler | None = None,
        subscription: Subscription | None = None,
        command_timeout: float = 10.0,
        open_timeout: float = 10.0,
        refresh_ratio: float = 0.8,
        refresh_margin: float = 30.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 2.0,
        ssl: ssl_module.SSLContext | None = None,
        transport: Transport = "auto",
        fallback_after: int = 2,
        presence: bool = False,
        sleep: Sleep | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ValueError(f"expected a ws:// or wss:// URL, got {url!r}")
        if last_event_id is not None and last_event_id < 0:
            raise ValueError("last_event_id must not be negative")
        # Presence messages are opt-in (`view_bug` opts in too): client/presence.py.
        self.url = with_query(url, presence="true") if presence else url
        self._tokens = TokenKeeper(
            token, token_provider, refresh_ratio=refresh_ratio, refresh_margin=refresh_margin
        )
        self._last_event_id = last_event_id
        self._delivery = Delivery(
            processed_event_id=last_event_id, on_resync=on_resync, on_skipped=on_skipped
        )
        self._backoff = backoff or Backoff()
        self._command_timeout = command_timeout
        options = DialOptions(open_timeout, ping_interval, ping_timeout, close_timeout, ssl)
        self._dialer = Dialer(transport, fallback_after, options)
        self._sleep: Sleep = sleep or asyncio.sleep
        self._random = random or random_module.random

        self._states = StateReporter(self._backoff.max_attempts, self._spawn)
        self._pending = PendingRequests(lambda: message_limit(self._welcome))
        #: The declared subscription: `await client.subscriptions.subscribe(projects=[3])`.
        self.subscriptions = Subscriptions(self.send, subscription)
        self.presence = Presence(self.send)  # view_bug(), on_change: client/presence.py
        self._request_ids = itertools.count(1)
        self._background: set[asyncio.Task[Any]] = set()

        self._ws: Link | None = None
        self._generation = 0
        self._ready = asyncio.Event()  # set while connected, and once stopped
        self._runner: asyncio.Task[None] | None = None
        self._first_connect: asyncio.Future[None] | None = None
        self._closing = False
        self._stopped = False
        self._stop_error: BaseException | None = None

        self._welcome: dict[str, Any] = {}

    # ---- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Start the session and wait for the first welcome. Raises what ended the session if
        it never got there: `ConnectionRejected` (e.g. an invalid token), `TokenExpired`, or
        `ReconnectFailed` after the backoff's attempts."""
        if self._runner is None:
            if self._stopped:
                raise ClientClosed("the client is closed")
            self._first_connect = asyncio.get_running_loop().create_future()
            # Retrieved even when nobody waits any more (connect() was cancelled).
            self._first_connect.add_done_callback(retrieve)
            self._runner = asyncio.create_task(self._run(), name="bugstream-client")
        assert self._first_connect is not None
        try:
            await asyncio.shield(self._first_connect)
        except asyncio.CancelledError:
            if self._runner is not None:
                self._runner.cancel()
            raise

    async def close(self) -> None:
        """Close the connection (code 1000) and stop. `events()` ends after what it holds;
        commands still waiting fail with `ClientClosed`."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        runner = self._runner
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.wait([runner])
        self._finish(None)

    # ---- what the application observes ----------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._states.current

    @property
    def transport(self) -> Literal["websocket", "sse"]:
        """The transport in use, or of the next connection: "websocket" or "sse"."""
        return self._dialer.transport

    @property
    def last_event_id(self) -> int | None:
        """The id of the newest event received: where a reconnect resumes. Events received
        may still wait in the queue for `events()`; to resume a later run, persist
        `processed_event_id` instead."""
        return self._last_event_id

    @property
    def processed_event_id(self) -> int | None:
        """The id of the newest event the application finished with: its handlers ran and
        the loop over `events()` asked for the next one (or `run()` went on). Persist this
        to resume a later run: nothing queued but not yet handled is skipped; at worst the
        last event is handled twice (a loop left with `break` did not ask for the next)."""
        return self._delivery.processed_event_id

    @property
    def on_resync(self) -> ResyncHandler | None:
        return self._delivery.on_resync

    @on_resync.setter
    def on_resync(self, handler: ResyncHandler | None) -> None:
        self._delivery.on_resync = handler

    @property
    def on_skipped(self) -> SkippedHandler | None:
        return self._delivery.on_skipped

    @on_skipped.setter
    def on_skipped(self, handler: SkippedHandler | None) -> None:
        self._delivery.on_skipped = handler

    @property
    def welcome(self) -> dict[str, Any]:
        """The payload of the current (or last) connection's welcome message."""
        return self._welcome

    @property
    def connection_id(self) -> str | None:
        value = self._welcome.get("connection_id")
        return value if isinstance(value, str) else None

    @property
    def token_expires_at(self) -> datetime | None:
        """When the token in use expires, as the server said (UTC)."""
        return self._tokens.expires_at_utc()

    def on_state(self, callback: StateCallback) -> StateCallback:
        """Call `callback(state)` on every change of `state` (usable as a decorator). An async
        callback is scheduled as a task."""
        return self._states.subscribe(callback)

    def on(
        self, event_type: str | None = None, event: str | None = None
    ) -> Callable[[Handler], Handler]:
        """Register a handler (decorator) for `event_type.event`, every event of
        `event_type`, or, with no arguments, every event. Handlers run in registration order
        when `events()` or `run()` takes the event; an async handler is awaited."""
        return self._delivery.on(event_type, event)

    def on_any(self, handler: Handler) -> Handler:
        """Register a handler for every event (decorator)."""
        return self.on()(handler)

    async def events(self) -> AsyncIterator[Event]:
        """Events in order, each once, after the matching handlers ran.

        Ends when the client is closed. Raises what ended the session
        (`ReconnectFailed`, `ConnectionRejected`, `TokenExpired`), and `ResyncRequired` when
        events were missed beyond the server's window and no `on_resync` callback is set:
        refetch state, then iterate `events()` again to follow the stream on. A `skipped`
        notice (superseded states left out for a client that fell behind) goes to
        `on_skipped` if set; the newer states it names arrive as events. Presence messages
        are not events: they go to `client.presence.on_change` callbacks."""
        async for event in self._delivery.events():
            yield event

    async def run(self) -> None:
        """Take events and run the handlers until the client is closed; raises like
        `events()`."""
        async for _ in self.events():
            pass

    # ---- commands -------------------------------------------------------------------------

    async def send(
        self,
        command: str,
        payload: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (a per-command bound, as documented)
    ) -> Any:
        """Send a command (`bug_report.create`, ...; see `bugstream.domain.protocol.Command`)
        and return the `result` of its acknowledgement.

        Raises the error answer typed by its code (`NotFound`, `Forbidden`, `Conflict`,
        `ValidationFailed`, else `CommandError`), `CommandTimeout` after `timeout` seconds
        (default `command_timeout`; waiting for a connection counts), `ConnectionLost` when
        the connection closed after the command went out and before its answer.
        """
        limit = self._command_timeout if timeout is None else timeout
        request_id = f"c{next(self._request_ids)}"
        try:
            async with asyncio.timeout(limit):
                message = {"type": command, "request_id": request_id, "payload": payload or {}}
                return await self._pending.call(self._wait_connected, message)
        except TimeoutError as exc:
            if isinstance(exc, CommandTimeout):
                raise
            raise CommandTimeout(command, request_id, limit) from None

    async def _wait_connected(self) -> tuple[Link, int]:
        while True:
            await self._ready.wait()
            if self._stopped:
                raise self._stopped_error()
            if self._ws is not None:
                return self._ws, self._generation
            self._ready.clear()

    def _stopped_error(self) -> BaseException:
        return self._stop_error or ClientClosed("the client is closed")

    # ---- the session ----------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0  # failed attempts since the last welcome
        token_retry_used = False
        error: BaseException | None = None
        try:
            while not self._closing:
                outcome = await self._connect_once()
                if self._closing:
                    break
                if outcome.welcomed:
                    failures = 0
                    token_retry_used = False
                if self._dialer.falls_back(outcome):  # WebSockets are blocked: SSE, at once
                    failures = 0
                    self._states.set(Phase.RECONNECTING, attempt=1, close_code=outcome.close_code)
                    continue
                code = outcome.close_code
                if code is not None and is_terminal(code):
                    if needs_new_token(code) and self._tokens.refreshes and not token_retry_used:
                        token_retry_used = True
                        if await self._tokens.renew():
                            self._states.set(
                                Phase.RECONNECTING, attempt=failures + 1, close_code=code
                            )
                            continue
                    raise outcome.rejected(refreshes=self._tokens.refreshes)
                if outcome.http_status is not None and not http_retryable(outcome.http_status):
                    raise self._dialer.refused(outcome.http_status)
                failures += 1
                limit = self._backoff.max_attempts
                if limit is not None and failures > limit:
                    raise ReconnectFailed(
                        limit,
                        close_code=code,
                        reason=outcome.reason,
                        error=outcome.exception,
                    )
                delay = self._backoff.delay(failures, self._random)
                log.info("reconnecting in %.2f s (attempt %d)", delay, failures)
                self._states.set(
                    Phase.RECONNECTING, attempt=failures, next_delay=delay, close_code=code
                )
                await self._sleep(delay)
                self._states.set(Phase.RECONNECTING, attempt=failures, close_code=code)
        except ClientError as exc:
            error = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must end the session loudly, not hang it
            log.exception("the client's connection loop failed")
            error = exc
        finally:
            self._finish(error)
            await self._dialer.aclose()

    async def _connect_once(self) -> Outcome:
        try:
            token = await self._tokens.for_connect()
        except Exception as exc:
            log.warning("the token provider failed: %s", exc)
            return Outcome(False, exception=exc, dialed=False)
        url = stream_url(self.url, self._last_event_id)
        ws = await self._dialer.dial(url, token, lambda: self._tokens.token)
        if isinstance(ws, Outcome):
            return ws
        self._generation += 1
        generation = self._generation
        outcome = Outcome(False)
        refresh: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(self._dialer.options.open_timeout):
                while not outcome.welcomed:
                    message = decode(await ws.recv())
                    kind = message.get("type")
                    if kind == ServerMessage.WELCOME:
                        self._on_welcome(ws, payload_of(message))
                        outcome.welcomed = True
                    elif kind == ServerMessage.ERROR:
                        outcome.error = payload_of(message)
            if self._tokens.refreshes:
                refresh = asyncio.create_task(
                    refresh_on_connection(
                        self._tokens,
                        ws,
                        self._pending,
                        generation,
                        request_id=lambda: f"auth-{next(self._request_ids)}",
                        answer_within=self._command_timeout,
                        connection_id=self.connection_id,
                    )
                )
            while True:
                self._last_event_id = route(
                    decode(await ws.recv()),
                    last_event_id=self._last_event_id,
                    delivery=self._delivery,
                    pending=self._pending,
                    outcome=outcome,
                    wants=self._wanted,
                    presence=self.presence.receive,
                )
        except ConnectionClosed as exc:
            if exc.rcvd is not None:
                outcome.close_code, outcome.reason = exc.rcvd.code, exc.rcvd.reason
            else:
                outcome.close_code = ABNORMAL_CLOSURE
        except TimeoutError as exc:  # no welcome in time
            outcome.exception = exc
        finally:
            self._ws = None
            self._ready.clear()
            if refresh is not None:
                refresh.cancel()
            self._pending.connection_lost(generation)
            await ws.close()
        if outcome.close_code is not None:
            log.info("connection closed: %s %s", outcome.close_code, outcome.reason)
        return outcome

    def _on_welcome(self, ws: Link, payload: dict[str, Any]) -> None:
        self._welcome = payload
        self._tokens.on_welcome(
            parse_time(payload.get("server_time")), parse_time(payload.get("token_expires_at"))
        )
        latest = payload.get("latest_event_id")
        if self._last_event_id is None and isinstance(latest, int):
            # A fresh start: what follows the server's position at this welcome is new.
            self._last_event_id = latest
            if self._delivery.processed_event_id is None:  # it begins at the live stream
                self._delivery.processed_event_id = latest
        self._ws = ws
        self._ready.set()
        for renewal in (self.subscriptions.renewal(), self.presence.renewal()):
            if renewal is not None:  # a new connection starts afresh: declare them again
                self._spawn(renewal)
        self._states.set(Phase.CONNECTED, connection_id=self.connection_id)
        if self._first_connect is not None and not self._first_connect.done():
            self._first_connect.set_result(None)

    def _wanted(self, event: Event) -> bool:
        user = self._welcome.get("user")
        return self.subscriptions.wants(event, user.get("id") if isinstance(user, dict) else None)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _finish(self, error: BaseException | None) -> None:
        """The session is over: tell everyone waiting, once."""
        if self._stopped:
            return
        self._stopped = True
        self._closing = True
        self._stop_error = error
        self._pending.fail_all(error)
        self._ready.set()
        if self._first_connect is not None and not self._first_connect.done():
            self._first_connect.set_exception(error or ClientClosed("the client was closed"))
        self._delivery.stop(error)
        self._states.set(Phase.CLOSED, close_code=self.state.close_code, error=error)
