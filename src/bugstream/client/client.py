"""`Client`: one reconnecting, resuming WebSocket session with a bugstream server.

    async with Client("ws://localhost:8000/ws", token_provider=get_token) as client:
        async for event in client.events():
            ...

What it does on its own (docs/integration.md):

- reconnects after a dropped connection with exponential backoff and full jitter (`Backoff`:
  2, 4, 8, 16, 32 s bounds, five attempts); a connection that reaches the welcome resets the
  count; `ReconnectFailed` when the attempts run out;
- obeys the close-code ranges (`bugstream.domain.protocol`): no retry after a "do not
  reconnect" code, except once with a new token from `token_provider` after 4001/4002;
- resumes: every reconnect asks for the events after the last one seen, and drops anything
  already seen, so the application sees each event once, in order; when the server no longer
  holds them it says so (`on_resync`, else `ResyncRequired` from `events()`); events the
  server conflated for a client that fell behind are reported to `on_skipped`;
- refreshes the token before it expires (`auth` message) on the same connection;
- answers commands (`send`) by request id, typed errors, timeouts; a command sent while
  reconnecting waits for the connection.

Everything the server sends is read by one background task and queued in order; `events()`
(or `run()`, for handler-only programs) takes events from that queue and calls the matching
handlers first. The queue is unbounded, so consume it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import random as random_module
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bugstream.client.backoff import Backoff
from bugstream.client.errors import (
    ClientClosed,
    ClientError,
    CommandTimeout,
    ConnectionLost,
    ConnectionRejected,
    ReconnectFailed,
    ResyncRequired,
    TokenExpired,
    error_from_payload,
)
from bugstream.client.events import Event, Skipped, check_event_filter, parse_event
from bugstream.client.state import ConnectionState, Phase
from bugstream.domain.errors import BugstreamError
from bugstream.domain.protocol import (
    ClientMessage,
    CloseCode,
    ServerMessage,
    is_terminal,
    needs_new_token,
)

log = logging.getLogger("bugstream.client")

#: Returns a JWT (a string), directly or as an awaitable; called for the first connection,
#: before the token expires, and once after close code 4001/4002.
TokenProvider = Callable[[], str | Awaitable[str]]
Handler = Callable[[Event], Awaitable[None] | None]
ResyncHandler = Callable[[ResyncRequired], Awaitable[None] | None]
SkippedHandler = Callable[[Skipped], Awaitable[None] | None]
StateCallback = Callable[[ConnectionState], object]
Sleep = Callable[[float], Awaitable[None]]

#: A close without a close frame (the network, or a crash).
ABNORMAL_CLOSURE = 1006


def _http_retryable(status: int) -> bool:
    """Whether an HTTP refusal of the upgrade is worth retrying: a server error or a
    timeout. Any other (403 origin or TLS, 404 path, 429 blocked address) is final."""
    return status >= 500 or status == 408


#: A token with less than this left is not used to connect; the provider is asked first.
_STALE_TOKEN_SECONDS = 1.0


@dataclass(slots=True)
class _Outcome:
    """How one connection attempt ended."""

    welcomed: bool
    close_code: int | None = None
    reason: str = ""
    error: dict[str, Any] | None = None  # the last `error` payload that answered no request
    exception: BaseException | None = None  # a connect that failed before any close code
    http_status: int | None = None


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Any]
    command: str
    generation: int


@dataclass(frozen=True, slots=True)
class _Stop:
    error: BaseException | None


_QueueItem = Event | ResyncRequired | Skipped | _Stop


class Client:
    """A bugstream WebSocket client. See the module docstring and docs/integration.md.

    Give `token` (a JWT), or `token_provider` (a sync or async callable returning one: the
    client then refreshes tokens by itself), or both. `last_event_id` resumes a stream a
    previous run left (persist `client.processed_event_id` to use it). `sleep` and `random` are
    the backoff's clock and jitter source (tests replace them).
    """

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
        command_timeout: float = 10.0,
        open_timeout: float = 10.0,
        refresh_ratio: float = 0.8,
        refresh_margin: float = 30.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 2.0,
        ssl: ssl_module.SSLContext | None = None,
        sleep: Sleep | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.netloc:
            raise ValueError(f"expected a ws:// or wss:// URL, got {url!r}")
        if token is None and token_provider is None:
            raise ValueError("give a token or a token_provider")
        if last_event_id is not None and last_event_id < 0:
            raise ValueError("last_event_id must not be negative")
        if not 0 < refresh_ratio < 1:
            raise ValueError("refresh_ratio must be between 0 and 1")
        self.url = url
        self.on_resync = on_resync
        self.on_skipped = on_skipped
        self._token = token
        self._provider = token_provider
        self._last_event_id = last_event_id
        self._processed_event_id = last_event_id
        self._backoff = backoff or Backoff()
        self._command_timeout = command_timeout
        self._open_timeout = open_timeout
        self._refresh_ratio = refresh_ratio
        self._refresh_margin = refresh_margin
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._ssl = ssl
        self._sleep: Sleep = sleep or asyncio.sleep
        self._random = random or random_module.random

        self._state = ConnectionState(Phase.CONNECTING, max_attempts=self._backoff.max_attempts)
        self._state_callbacks: list[StateCallback] = []
        self._handlers: list[tuple[str | None, str | None, Handler]] = []
        self._queue: asyncio.Queue[_QueueItem] = asyncio.Queue()
        self._pending: dict[str, _Pending] = {}
        self._request_ids = itertools.count(1)
        self._background: set[asyncio.Task[Any]] = set()

        self._ws: ClientConnection | None = None
        self._generation = 0
        self._ready = asyncio.Event()  # set while connected, and once stopped
        self._runner: asyncio.Task[None] | None = None
        self._first_connect: asyncio.Future[None] | None = None
        self._closing = False
        self._stopped = False
        self._stop_error: BaseException | None = None

        self._welcome: dict[str, Any] = {}
        self._token_expires_at: float | None = None  # server clock, epoch seconds
        self._clock_offset = 0.0  # server clock minus ours

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
        """Start the session and wait for the first welcome.

        Raises what ended the session if it never got there: `ConnectionRejected` (e.g. an
        invalid token), `TokenExpired`, or `ReconnectFailed` after the backoff's attempts.
        """
        if self._runner is None:
            if self._stopped:
                raise ClientClosed("the client is closed")
            self._first_connect = asyncio.get_running_loop().create_future()
            # Retrieved even when nobody waits any more (connect() was cancelled).
            self._first_connect.add_done_callback(_retrieve)
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
        return self._state

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
        return self._processed_event_id

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
        if self._token_expires_at is None:
            return None
        return datetime.fromtimestamp(self._token_expires_at, UTC)

    def on_state(self, callback: StateCallback) -> StateCallback:
        """Call `callback(state)` on every change of `state` (usable as a decorator). An async
        callback is scheduled as a task."""
        self._state_callbacks.append(callback)
        return callback

    def on(
        self, event_type: str | None = None, event: str | None = None
    ) -> Callable[[Handler], Handler]:
        """Register a handler (decorator) for `event_type.event`, every event of
        `event_type`, or, with no arguments, every event. Handlers run in registration order
        when `events()` or `run()` takes the event; an async handler is awaited."""
        check_event_filter(event_type, event)

        def register(handler: Handler) -> Handler:
            self._handlers.append((event_type, event, handler))
            return handler

        return register

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
        `on_skipped` if set; the newer states it names arrive as events.
        """
        while True:
            item = await self._queue.get()
            if isinstance(item, _Stop):
                self._queue.put_nowait(item)  # later iterations end as well
                if item.error is not None:
                    raise item.error
                return
            if isinstance(item, ResyncRequired):
                if self.on_resync is None:
                    raise item
                await _maybe_await(self.on_resync(item))
                # The application refetched its state: what it has is as of the server's
                # newest event when it was told.
                self._processed_event_id = max(self._processed_event_id or 0, item.latest_event_id)
                continue
            if isinstance(item, Skipped):
                if self.on_skipped is not None:
                    await _maybe_await(self.on_skipped(item))
                continue
            for event_type, name, handler in list(self._handlers):
                if event_type in (None, item.type) and name in (None, item.event):
                    await _maybe_await(handler(item))
            yield item
            self._processed_event_id = item.event_id

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
                return await self._request(command, dict(payload or {}), request_id)
        except TimeoutError as exc:
            if isinstance(exc, CommandTimeout):
                raise
            raise CommandTimeout(command, request_id, limit) from None

    async def _request(self, command: str, payload: dict[str, Any], request_id: str) -> Any:
        message = _encode({"type": command, "request_id": request_id, "payload": payload})
        while True:
            ws, generation = await self._wait_connected()
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending[request_id] = _Pending(future, command, generation)
            try:
                try:
                    await ws.send(message)
                except ConnectionClosed:
                    continue  # it never went out: wait for the next connection
                return await future
            finally:
                self._pending.pop(request_id, None)

    async def _wait_connected(self) -> tuple[ClientConnection, int]:
        while True:
            await self._ready.wait()
            if self._stopped:
                raise self._stopped_error()
            if self._ws is not None:
                return self._ws, self._generation
            self._ready.clear()

    def _stopped_error(self) -> BaseException:
        if self._stop_error is not None:
            return self._stop_error
        return ClientClosed("the client is closed")

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
                code = outcome.close_code
                if code is not None and is_terminal(code):
                    if (
                        needs_new_token(code)
                        and self._provider is not None
                        and not token_retry_used
                    ):
                        token_retry_used = True
                        if await self._renew_token():
                            self._set_state(
                                Phase.RECONNECTING, attempt=failures + 1, close_code=code
                            )
                            continue
                    raise self._rejected(outcome)
                if outcome.http_status is not None and not _http_retryable(outcome.http_status):
                    raise ConnectionRejected(
                        f"the server refused the WebSocket upgrade with HTTP "
                        f"{outcome.http_status}; not reconnecting",
                        http_status=outcome.http_status,
                    )
                failures += 1
                if failures > self._backoff.max_attempts:
                    raise ReconnectFailed(
                        self._backoff.max_attempts,
                        close_code=code,
                        reason=outcome.reason,
                        error=outcome.exception,
                    )
                delay = self._backoff.delay(failures, self._random)
                log.info("reconnecting in %.2f s (attempt %d)", delay, failures)
                self._set_state(
                    Phase.RECONNECTING, attempt=failures, next_delay=delay, close_code=code
                )
                await self._sleep(delay)
                self._set_state(Phase.RECONNECTING, attempt=failures, close_code=code)
        except ClientError as exc:
            error = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must end the session loudly, not hang it
            log.exception("the client's connection loop failed")
            error = exc
        finally:
            self._finish(error)

    async def _connect_once(self) -> _Outcome:
        try:
            token = await self._token_for_connect()
        except Exception as exc:
            log.warning("the token provider failed: %s", exc)
            return _Outcome(False, exception=exc)
        try:
            ws = await connect(
                self._stream_url(),
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=self._open_timeout,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
                # A dead link never answers the close frame either: waiting websockets'
                # default 10 s for it kept a client on a stalled link "connected" that long
                # after its pings had gone unanswered.
                close_timeout=self._close_timeout,
                ssl=self._ssl,
            )
        except InvalidStatus as exc:
            return _Outcome(False, exception=exc, http_status=exc.response.status_code)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            log.info("could not connect: %s", exc)
            return _Outcome(False, exception=exc)
        self._generation += 1
        generation = self._generation
        outcome = _Outcome(False)
        refresh: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(self._open_timeout):
                while not outcome.welcomed:
                    message = _decode(await ws.recv())
                    kind = message.get("type")
                    if kind == ServerMessage.WELCOME:
                        self._on_welcome(ws, _payload(message))
                        outcome.welcomed = True
                    elif kind == ServerMessage.ERROR:
                        outcome.error = _payload(message)
            if self._provider is not None:
                refresh = asyncio.create_task(self._refresh_tokens(ws, generation))
            while True:
                self._handle(_decode(await ws.recv()), outcome)
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
            for request_id, pending in list(self._pending.items()):
                if pending.generation == generation:
                    self._fail(request_id, pending, ConnectionLost(pending.command, request_id))
            await ws.close()
        if outcome.close_code is not None:
            log.info("connection closed: %s %s", outcome.close_code, outcome.reason)
        return outcome

    def _on_welcome(self, ws: ClientConnection, payload: dict[str, Any]) -> None:
        self._welcome = payload
        server_time = self._welcome_time("server_time")
        if server_time is not None:
            self._clock_offset = server_time.timestamp() - time.time()
        expires = self._welcome_time("token_expires_at")
        self._token_expires_at = expires.timestamp() if expires is not None else None
        latest = payload.get("latest_event_id")
        if self._last_event_id is None and isinstance(latest, int):
            # A fresh start: what follows the server's position at this welcome is new.
            self._last_event_id = latest
            if self._processed_event_id is None:  # a fresh start begins at the live stream
                self._processed_event_id = latest
        self._ws = ws
        self._ready.set()
        self._set_state(Phase.CONNECTED, connection_id=self.connection_id)
        if self._first_connect is not None and not self._first_connect.done():
            self._first_connect.set_result(None)

    def _handle(self, message: dict[str, Any], outcome: _Outcome) -> None:
        if "event_id" in message and "event" in message:
            event = parse_event(message)
            if event is None:
                log.warning("ignoring a malformed event: %.200r", message)
                return
            if self._last_event_id is not None and event.event_id <= self._last_event_id:
                return  # already delivered (a replay overlapping the live stream)
            self._last_event_id = event.event_id
            self._queue.put_nowait(event)
            return
        kind = message.get("type")
        payload = _payload(message)
        if kind == ServerMessage.ACK:
            self._answer(payload.get("request_id"), payload.get("result"), None)
        elif kind == ServerMessage.ERROR:
            request_id = payload.get("request_id")
            if isinstance(request_id, str) and request_id in self._pending:
                self._answer(request_id, None, error_from_payload(payload))
            else:
                outcome.error = payload
                log.warning("server error: %s: %s", payload.get("code"), payload.get("message"))
        elif kind == ServerMessage.RESYNC_REQUIRED:
            resync = ResyncRequired(
                _int(payload.get("last_event_id")),
                _int(payload.get("oldest_event_id")),
                _int(payload.get("latest_event_id")),
            )
            # The server goes on after `latest_event_id`; a later reconnect resumes there.
            self._last_event_id = max(self._last_event_id or 0, resync.latest_event_id)
            self._queue.put_nowait(resync)
        elif kind == ServerMessage.SKIPPED:
            ids = payload.get("event_ids")
            skipped = Skipped(
                tuple(i for i in ids if isinstance(i, int)) if isinstance(ids, list) else (),
                str(payload.get("reason", "")),
            )
            log.info("the server left out superseded events %s", list(skipped.event_ids))
            self._queue.put_nowait(skipped)

    def _answer(self, request_id: Any, result: Any, error: BaseException | None) -> None:
        pending = self._pending.get(request_id) if isinstance(request_id, str) else None
        if pending is None or pending.future.done():
            return
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(result)

    @staticmethod
    def _fail(request_id: str, pending: _Pending, error: BaseException) -> None:
        if pending.future.done():
            return
        if pending.command == ClientMessage.AUTH:
            pending.future.cancel()  # its refresh task is being cancelled too
        else:
            pending.future.set_exception(error)

    def _finish(self, error: BaseException | None) -> None:
        """The session is over: tell everyone waiting, once."""
        if self._stopped:
            return
        self._stopped = True
        self._closing = True
        self._stop_error = error
        for request_id, pending in list(self._pending.items()):
            self._fail(request_id, pending, error or ConnectionLost(pending.command, request_id))
        self._ready.set()
        if self._first_connect is not None and not self._first_connect.done():
            self._first_connect.set_exception(error or ClientClosed("the client was closed"))
        self._queue.put_nowait(_Stop(error))
        self._set_state(Phase.CLOSED, close_code=self._state.close_code, error=error)

    def _rejected(self, outcome: _Outcome) -> ConnectionRejected:
        code = outcome.close_code
        said = f": {outcome.error.get('message')}" if outcome.error else ""
        if code == CloseCode.TOKEN_EXPIRED:
            hint = (
                "the token provider gave no newer token"
                if self._provider is not None
                else "pass token_provider= to have tokens refreshed"
            )
            return TokenExpired(
                f"the token expired (close code 4002); {hint}",
                close_code=code,
                reason=outcome.reason,
                error=outcome.error,
            )
        return ConnectionRejected(
            f"the server closed the connection with code {code} ({outcome.reason}){said}; "
            "not reconnecting",
            close_code=code,
            reason=outcome.reason,
            error=outcome.error,
        )

    def _stream_url(self) -> str:
        """The URL, with `last_event_id` to resume from the last event seen."""
        parts = urlsplit(self.url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("last_event_id", "token")]
        if self._last_event_id is not None:
            query.append(("last_event_id", str(self._last_event_id)))
        return urlunsplit(parts._replace(query=urlencode(query)))

    # ---- tokens ---------------------------------------------------------------------------

    async def _token_for_connect(self) -> str:
        if self._provider is not None and (self._token is None or self._token_is_stale()):
            self._token = await self._call_provider()
            self._token_expires_at = None
        assert self._token is not None
        return self._token

    def _token_is_stale(self) -> bool:
        left = self._seconds_left()
        return left is not None and left < _STALE_TOKEN_SECONDS

    def _seconds_left(self) -> float | None:
        if self._token_expires_at is None:
            return None
        return self._token_expires_at - (time.time() + self._clock_offset)

    def _refresh_delay(self, left: float) -> float:
        """When to refresh: the earlier of `refresh_ratio` of the time left and
        `refresh_margin` seconds before expiry, but never before half the time left (so
        short-lived tokens do not refresh in a loop)."""
        return max(min(left * self._refresh_ratio, left - self._refresh_margin), left / 2)

    async def _call_provider(self) -> str:
        assert self._provider is not None
        token = await _maybe_await(self._provider())
        if not isinstance(token, str) or not token:
            raise TypeError("the token provider must return a non-empty string")
        return token

    async def _renew_token(self) -> bool:
        """Ask the provider once for a token to retry with; False if it has no new one."""
        try:
            token = await self._call_provider()
        except Exception as exc:
            log.warning("the token provider failed: %s", exc)
            return False
        if token == self._token:
            return False
        self._token = token
        self._token_expires_at = None
        return True

    async def _refresh_tokens(self, ws: ClientConnection, generation: int) -> None:
        """Send fresh tokens on this connection before the current one expires."""
        while True:
            left = self._seconds_left()
            if left is None or left <= 0:
                return  # unknown, or too late: the server closes with 4002, we reconnect
            await asyncio.sleep(self._refresh_delay(left))
            try:
                token = await self._call_provider()
            except Exception as exc:
                log.warning("the token provider failed: %s; will retry", exc)
                continue
            if token == self._token:
                log.warning("the token provider returned the token in use; will retry")
                continue
            request_id = f"auth-{next(self._request_ids)}"
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending[request_id] = _Pending(future, ClientMessage.AUTH.value, generation)
            try:
                await ws.send(
                    _encode(
                        {
                            "type": ClientMessage.AUTH.value,
                            "request_id": request_id,
                            "payload": {"token": token},
                        }
                    )
                )
                async with asyncio.timeout(self._command_timeout):
                    result = await future
            except (ConnectionClosed, ConnectionLost, ClientError):
                return
            except BugstreamError as exc:
                log.warning("the server refused the new token: %s", exc)
                continue
            except TimeoutError:
                log.warning("no answer to the token refresh; will retry")
                continue
            finally:
                self._pending.pop(request_id, None)
            self._token = token
            expires = (
                _parse_time(result.get("token_expires_at")) if isinstance(result, dict) else None
            )
            self._token_expires_at = expires.timestamp() if expires is not None else None
            log.info("token refreshed on connection %s", self.connection_id)

    # ---- helpers --------------------------------------------------------------------------

    def _welcome_time(self, key: str) -> datetime | None:
        return _parse_time(self._welcome.get(key))

    def _set_state(self, phase: Phase, **fields: Any) -> None:
        state = ConnectionState(phase, max_attempts=self._backoff.max_attempts, **fields)
        if state == self._state:
            return
        self._state = state
        for callback in list(self._state_callbacks):
            try:
                result = callback(state)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
            except Exception:
                log.exception("a connection state callback failed")


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _decode(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError:
        log.warning("ignoring a message that is not JSON: %.200r", raw)
        return {}
    return message if isinstance(message, dict) else {}


def _payload(message: dict[str, Any]) -> dict[str, Any]:
    payload = message.get("payload")
    return payload if isinstance(payload, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
