"""The SSE fallback as a link the client drives like a WebSocket: `/ws`'s messages read from
`GET /api/v1/events/stream` (Server-Sent Events), and each message the client sends POSTed
to `/api/v1/events/stream/{connection_id}` (docs/websocket.md#the-sse-fallback).

`SseLink` has the three calls the client makes of a websockets connection (`recv`, `send`,
`close`) and ends the same way, with `ConnectionClosed` carrying the server's close code
(`event: close`) or none (the stream broke: 1006). So the session loop, resume, commands and
token refresh are the WebSocket path's own. A reader task turns the body into messages; every
line counts as life (heartbeats are SSE comments), and a stream silent for longer than the
server's heartbeat interval plus `idle_grace` is dropped, as a WebSocket whose pongs stop.
The SSE lines are parsed here rather than by a library: httpx-sse hides comments, and the
heartbeats are what tells a live stream from a dead link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from bugstream.client.outcome import ABNORMAL_CLOSURE, Outcome
from bugstream.client.wire import decode, encode, payload_of
from bugstream.domain.protocol import CloseCode, ServerMessage

log = logging.getLogger("bugstream.client")

STREAM_PATH = "/api/v1/events/stream"

#: The close code a refused stream stands for: what `/ws` closes with after the same error.
REFUSAL_CLOSE_CODES = {
    "invalid_token": CloseCode.INVALID_TOKEN,
    "token_expired": CloseCode.TOKEN_EXPIRED,
    "forbidden": CloseCode.FORBIDDEN,
    "blocked": CloseCode.BLOCKED,
    "too_many_connections": CloseCode.TOO_MANY_CONNECTIONS,
    "service_unavailable": CloseCode.SERVER_FULL,
}


def sse_url(ws_url: str) -> str:
    """The stream's URL for a `/ws` URL: same host, `/ws` replaced by the stream's path,
    the query kept (`last_event_id`, `presence`); http(s) for ws(s)."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    path = parts.path.removesuffix("/").removesuffix("/ws") + STREAM_PATH
    return urlunsplit(parts._replace(scheme=scheme, path=path))


class _Ended:
    """The end of the stream, as the reader saw it (None: no close from the server)."""

    def __init__(self, code: int | None, reason: str) -> None:
        self.code, self.reason = code, reason

    def error(self) -> ConnectionClosed:
        return ConnectionClosed(None if self.code is None else Close(self.code, self.reason), None)


class SseLink:
    """One stream: see the module docstring. Made by `dial_sse`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        response: httpx.Response,
        url: str,
        token: Callable[[], str | None],
        *,
        open_timeout: float,
        idle_grace: float | None,
    ) -> None:
        self._http = http
        self._response = response
        self._post_base = urlunsplit(urlsplit(url)._replace(query=""))
        self._token = token
        self._idle_grace = idle_grace
        self._idle_limit: float | None = open_timeout  # until the welcome says the heartbeat
        self._inbox: asyncio.Queue[str | _Ended] = asyncio.Queue()
        self._ended: _Ended | None = None
        self._posting = asyncio.Lock()  # messages go out one at a time, in order
        self.connection_id: str | None = None
        self._reader = asyncio.create_task(self._read(), name="bugstream-sse-reader")

    # ---- what the client calls ------------------------------------------------------------

    async def recv(self) -> str:
        """The next message; `ConnectionClosed` once the stream ended."""
        item = await self._inbox.get()
        if isinstance(item, _Ended):
            self._inbox.put_nowait(item)  # for every later call too
            raise item.error()
        return item

    async def send(self, message: str) -> None:
        """POST one message; its answer arrives on the stream. `ConnectionClosed` when it
        certainly did not reach the stream (the client sends it again on the next one)."""
        async with self._posting:
            if self._ended is not None or self.connection_id is None:
                raise self._ended_error()
            headers = {"Content-Type": "application/json"}
            token = self._token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
            try:
                answer = await self._http.post(
                    f"{self._post_base}/{self.connection_id}", content=message, headers=headers
                )
            except httpx.ConnectError as exc:  # nothing went out
                self._end(None, f"could not post: {exc}")
                raise self._ended_error() from exc
            except httpx.HTTPError as exc:  # it may have: its command fails as ConnectionLost
                self._end(None, f"the post failed: {exc}")
                return
        if answer.status_code == 404:
            # The stream is not open where the POST went (it ended, or another instance
            # answered): the message never ran; a new stream starts afresh.
            self._end(None, "the stream is gone")
            raise self._ended_error()
        if not answer.is_success:
            self._refused(message, answer)

    async def close(self) -> None:
        self._end(CloseCode.NORMAL, "")
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        await self._response.aclose()

    # ---- the stream -----------------------------------------------------------------------

    async def _read(self) -> None:
        code: int | None = None
        reason = "the stream ended"
        try:
            async for kind, data in self._events():
                if kind == "close":
                    closing = decode(data)
                    code = closing.get("code", ABNORMAL_CLOSURE)
                    reason = str(closing.get("reason", ""))
                    return
                self._watch(data)
                self._inbox.put_nowait(data)
        except TimeoutError:
            reason = "no heartbeat on the stream"
        except httpx.HTTPError as exc:
            reason = f"the stream broke: {exc}"
        finally:
            self._end(code, reason)

    async def _events(self) -> AsyncIterator[tuple[str, str]]:
        """(event type, data) for each event of the body; comments only keep it alive."""
        lines = self._response.aiter_lines()
        kind, data = "message", list[str]()
        while True:
            async with asyncio.timeout(self._idle_limit):
                line = await anext(lines, None)
            if line is None:
                return
            if line == "":
                if data:
                    yield kind, "\n".join(data)
                kind, data = "message", []
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "data":
                    data.append(value)
                elif field == "event":
                    kind = value

    def _watch(self, data: str) -> None:
        """Learn the connection id and the heartbeat interval from the welcome."""
        if self.connection_id is not None:
            return
        message = decode(data)
        if message.get("type") != ServerMessage.WELCOME:
            return
        payload = payload_of(message)
        connection_id = payload.get("connection_id")
        self.connection_id = connection_id if isinstance(connection_id, str) else None
        heartbeat = payload.get("heartbeat")
        interval = heartbeat.get("ping_interval") if isinstance(heartbeat, dict) else None
        if self._idle_grace is None or not isinstance(interval, int | float):
            self._idle_limit = None
        else:
            self._idle_limit = float(interval) + self._idle_grace

    def _refused(self, message: str, answer: httpx.Response) -> None:
        """The server refused a message before the stream saw it (a 401, a 422): answer it
        on the stream as `/ws` would, with its request id, so its command fails at once."""
        payload = _error_payload(answer)
        sent = decode(message)
        payload["request_id"] = sent.get("request_id")
        self._inbox.put_nowait(encode({"type": ServerMessage.ERROR.value, "payload": payload}))

    def _end(self, code: int | None, reason: str) -> None:
        """The stream is over: `recv` raises once it has returned what came before."""
        if self._ended is None:
            log.info("the event stream ended: %s %s", code, reason)
            self._ended = _Ended(code, reason)
            self._inbox.put_nowait(self._ended)

    def _ended_error(self) -> ConnectionClosed:
        return (self._ended or _Ended(None, "")).error()


def http_client(url: str, ssl: ssl_module.SSLContext | None, timeout: float) -> httpx.AsyncClient:
    """The HTTP client of a session's streams and posts (its connections are kept alive)."""
    verify: ssl_module.SSLContext | bool = ssl if ssl is not None else url.startswith("wss:")
    return httpx.AsyncClient(verify=verify, timeout=timeout)


async def dial_sse(
    http: httpx.AsyncClient,
    url: str,
    token: Callable[[], str | None],
    *,
    open_timeout: float,
    idle_grace: float | None,
) -> SseLink | Outcome:
    """Open the stream for the `/ws` URL `url`, or how that failed (a refusal carries the
    close code `/ws` would have closed with, and the server's error)."""
    stream = sse_url(url)
    bearer = token()
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        async with asyncio.timeout(open_timeout):
            # No read timeout: the heartbeat bounds the stream's silences (SseLink).
            timeout = httpx.Timeout(open_timeout, read=None)
            request = http.build_request("GET", stream, headers=headers, timeout=timeout)
            response = await http.send(request, stream=True)
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        log.info("could not open the event stream: %s", exc)
        return Outcome(False, exception=exc)
    if response.status_code != 200:
        await response.aread()
        await response.aclose()
        return _refusal(response)
    return SseLink(http, response, stream, token, open_timeout=open_timeout, idle_grace=idle_grace)


def _refusal(response: httpx.Response) -> Outcome:
    error = _error_payload(response)
    code = REFUSAL_CLOSE_CODES.get(str(error.get("code")))
    if code is None:  # not bugstream's refusal (no such path, a proxy): as a refused upgrade
        return Outcome(False, http_status=response.status_code, reason=str(error.get("message")))
    return Outcome(False, close_code=code, reason=str(error.get("message", "")), error=error)


def _error_payload(response: httpx.Response) -> dict[str, Any]:
    """The error envelope's payload, or one that names the HTTP status."""
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):
        body = None
    payload = body.get("payload") if isinstance(body, dict) else None
    if isinstance(payload, dict) and "code" in payload:
        return dict(payload)
    return {"code": "http_error", "message": f"HTTP {response.status_code}"}
