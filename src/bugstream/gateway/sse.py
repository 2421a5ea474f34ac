"""The event stream as Server-Sent Events: `/ws`'s messages where WebSockets are blocked.

An `SseSink` is a `FrameSink`: the gateway opens, feeds and closes it as it does a socket,
through the same hub (audiences, subscriptions, coalesced writes, backlog bounds, replay).
What the hub writes are WebSocket text frames, shared by every recipient; the sink turns each
into one SSE event: `data:` the same JSON message, and `id:` the event id for events, so a
client resumes with `Last-Event-ID` as it would with `last_event_id`. This per-connection
rewrite is the price of the fallback, not of the WebSocket path.

Flow control mirrors a transport's: the sink's queue stands for the socket buffer. Above
`HIGH_WATER` queued bytes the connection is paused (the hub queues, conflates and counts the
backlog, and cuts a client that stops reading with `slow_consumer`); once the response has
drained below `LOW_WATER` the hub is told it is writable again. Heartbeats are SSE comments;
a client that takes them (or anything) counts as active, as a socket's client does by sending:
a plain `EventSource` sends nothing, and must not be cut for silence (a client that stops
reading is cut as a slow consumer; one that vanished without a word, when TCP gives up).
A server-side close is a last event, `event: close` with `{"code", "reason"}` (the WebSocket
close codes: docs/errors.md), then the end of the response.
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable

import orjson

from bugstream.domain.errors import BugstreamError, ErrorCode
from bugstream.gateway.connection import Connection

#: Queued bytes above which the connection counts as paused, and below which it resumes.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
HEARTBEAT = b": heartbeat\n\n"

#: An event's envelope ends with its id (domain.events.Event.envelope): `..., "event_id": N}`.
#: Inside a JSON string a quote is escaped, so this can only match the top-level key.
_EVENT_ID = re.compile(rb',"event_id":(\d+)\}\Z')


def frame_messages(frames: bytes) -> list[bytes]:
    """The messages (JSON) of unmasked server text frames, one or more as the hub writes them."""
    messages: list[bytes] = []
    at = 0
    end = len(frames)
    while at < end:
        first, length = frames[at], frames[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", frames, at)
            at += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", frames, at)
            at += 8
        if first & 0x0F == 0x1:  # only text frames carry messages
            messages.append(frames[at : at + length])
        at += length
    return messages


def sse_event(message: bytes) -> bytes:
    """One message as an SSE event; an event's id as its `id:` (for `Last-Event-ID`)."""
    match = _EVENT_ID.search(message)
    if match is None:
        return b"data: " + message + b"\n\n"
    return b"id: " + match.group(1) + b"\ndata: " + message + b"\n\n"


class SseSink:
    """A `FrameSink` whose socket is an HTTP response body (see the module docstring)."""

    def __init__(
        self,
        writable_again: Callable[[Connection], None],
        taken: Callable[[Connection], None],
    ) -> None:
        self._writable_again = writable_again
        #: Told each time the client took what was written (it reads, so it is alive).
        self._taken = taken
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._ready = asyncio.Event()
        self.conn: Connection | None = None
        #: Set once the server closed the stream: (close code, reason).
        self.closed_with: tuple[int, str] | None = None
        #: Messages written before the connection was accepted: a refusal's error.
        self.early: list[bytes] = []

    # ---- FrameSink --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closed_with is not None:
            return
        messages = frame_messages(data)
        if self.conn is None:
            self.early.extend(messages)
        self._push(b"".join([sse_event(message) for message in messages]))

    def buffered(self) -> int:
        return self._queued

    def send_ping(self) -> None:
        if self.closed_with is None:
            self._push(HEARTBEAT)

    def close(self, code: int, reason: str) -> None:
        if self.closed_with is not None:
            return
        message = orjson.dumps({"code": code, "reason": reason})
        self._push(b"event: close\ndata: " + message + b"\n\n")
        self.closed_with = (code, reason)

    def refusal(self) -> BugstreamError:
        """The error the gateway wrote before it closed a stream it did not accept."""
        for message in self.early:
            parsed = orjson.loads(message)
            if parsed.get("type") == "error":
                payload = dict(parsed["payload"])
                code = ErrorCode(payload.pop("code"))
                return BugstreamError(payload.pop("message"), code=code, details=payload)
        return BugstreamError("the stream was refused", code=ErrorCode.SERVICE_UNAVAILABLE)

    # ---- the response body ------------------------------------------------------------------

    async def body(self) -> AsyncIterator[bytes]:
        """What the HTTP response sends, as it is written; ends after a close."""
        while True:
            if not self._queue:
                if self.closed_with is not None:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            chunk = b"".join(self._queue)
            self._queue.clear()
            yield chunk  # returns once the server took it: that is the backpressure
            self._queued -= len(chunk)
            conn = self.conn
            if conn is None:
                continue
            self._taken(conn)
            if conn.paused and self._queued <= LOW_WATER:
                conn.paused = False
                self._writable_again(conn)

    def _push(self, data: bytes) -> None:
        if not data:
            return
        self._queue.append(data)
        self._queued += len(data)
        self._ready.set()
        if self.conn is not None and self._queued > HIGH_WATER:
            self.conn.paused = True
