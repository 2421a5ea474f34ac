"""One client connection as the gateway core sees it: who, what it wants, what is pending.

Per-connection state is kept small (slots, no task, no buffer object until needed). Two
outbound queues, flushed together in a single `write`:
- `control`: replies that carry no event id (welcome, ack, error, pong, resync_required,
  skipped). They go first: a lagging client still gets its answers at once.
- `pending`: events, as `Outgoing` items shared by every recipient of the event, kept in
  event-id order. For a client that lags, superseded state events of the same entity are
  conflated: the older ones are dropped (and the client is told which, with `skipped`), the
  newest stays at its own place, so order is never broken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bugstream.domain.catalog import CATALOG, Scope
from bugstream.domain.enums import Role
from bugstream.domain.events import Event
from bugstream.gateway.compression import deflate_message
from bugstream.gateway.frames import frame_payload

#: The most event bytes one flush hands to a transport (replies are never held back).
WRITE_WINDOW = 256 * 1024


class Outgoing:
    """An event on its way out: its frame, conflation key (or None) and id. One per event,
    shared by all its recipients; its permessage-deflate variant is made on first use, once,
    and shared by every recipient that negotiated compression."""

    __slots__ = ("_deflated", "event_id", "frame", "key", "window_bits")

    def __init__(self, frame: bytes, key: object, event_id: int, window_bits: int = 0) -> None:
        self.frame = frame
        self.key = key
        self.event_id = event_id
        #: The LZ77 window (as bits) the frame's compression needs; 0: not compressed.
        self.window_bits = window_bits
        self._deflated: Outgoing | None = None

    def deflated(self) -> Outgoing:
        """The compressed variant (this item itself when compression does not pay)."""
        deflated = self._deflated
        if deflated is None:
            packed = deflate_message(frame_payload(self.frame))
            deflated = self
            if packed is not None:
                deflated = Outgoing(packed[0], self.key, self.event_id, packed[1])
            self._deflated = deflated
        return deflated

    def for_window(self, window_bits: int) -> Outgoing:
        """The variant for a connection whose compressed messages may use a window of
        `window_bits` (0: compression not negotiated)."""
        if not window_bits:
            return self
        deflated = self.deflated()
        return deflated if deflated.window_bits <= window_bits else self


class FrameSink(Protocol):
    """What a listener adapter gives the core for one socket.

    The adapter also keeps `Connection.paused` (True while the transport asked us to stop
    writing), and may replace `Connection.write` and `Connection.buffered` with its
    transport's own methods while the socket is open: they run once per recipient.
    """

    def write(self, data: bytes) -> None:
        """Write already-encoded frames (in order)."""

    def buffered(self) -> int:
        """Bytes accepted by `write` but not yet sent to the kernel."""

    def send_ping(self) -> None: ...

    def close(self, code: int, reason: str) -> None:
        """Send a close frame (after what was written) and close the socket."""


@dataclass(frozen=True, slots=True)
class ClientInfo:
    connection_id: str
    user_id: int
    username: str
    remote_address: str
    connected_at: float  # wall clock, seconds since the epoch


class Subscription:
    """What a client chose to receive. `None` sets mean "everything I may see"."""

    __slots__ = ("bug_reports", "projects")

    def __init__(self) -> None:
        self.projects: set[int] | None = None
        self.bug_reports: set[int] | None = None

    @property
    def narrowed(self) -> bool:
        return self.projects is not None or self.bug_reports is not None

    def wants(self, event: Event, user_id: int) -> bool:
        if not self.narrowed:
            return True
        meaning = CATALOG[event.type]
        if meaning.scope is not Scope.PROJECT:
            return True  # personal events are never filtered out
        if event.user_id == user_id and meaning.events[event.event].changes_access:
            return True  # nor is news of one's own access changing (membership)
        if self.projects is not None and event.project_id in self.projects:
            return True
        if self.bug_reports is not None and meaning.bug_report_field is not None:
            return event.payload.get(meaning.bug_report_field) in self.bug_reports
        return False

    def describe(self) -> dict[str, object]:
        if not self.narrowed:
            return {"all": True}
        return {
            "all": False,
            "projects": sorted(self.projects or ()),
            "bug_reports": sorted(self.bug_reports or ()),
        }


class Connection:
    __slots__ = (
        "buffered",
        "closed",
        "control",
        "deflate_bits",
        "delivered_through",
        "dirty",
        "drain_waiter",
        "held",
        "held_bytes",
        "info",
        "last_activity",
        "last_ping",
        "paused",
        "pending",
        "pending_bytes",
        "role",
        "sink",
        "skip_through",
        "subscription",
        "token_expires_at",
        "write",
        "writes",
    )

    def __init__(
        self, info: ClientInfo, role: Role, sink: FrameSink, *, now: float, token_expires_at: float
    ) -> None:
        self.info = info
        self.role = role
        self.sink = sink
        #: The sink's write and buffered (see FrameSink), kept at hand for the fan-out.
        self.write: Callable[[bytes], object] = sink.write
        self.buffered: Callable[[], int] = sink.buffered
        #: True while the transport asked us to stop writing (its buffer is full).
        self.paused = False
        #: Writes made so far: a client whose count moves is taking what it is sent.
        self.writes = 0
        #: permessage-deflate: the largest window (bits) our compressed messages may use with
        #: this client; 0: not negotiated (plain frames only).
        self.deflate_bits = 0
        self.subscription = Subscription()
        self.control: list[bytes] = []
        self.pending: list[Outgoing] = []
        self.pending_bytes = 0
        self.dirty = False
        self.closed = False
        #: While a replay runs, live events wait here (they come after the replay).
        self.held: list[Outgoing] | None = None
        self.held_bytes = 0
        #: Resolved by the hub once what is queued has drained (a replay waits on it).
        self.drain_waiter: asyncio.Future[None] | None = None
        #: Events up to this id are not sent live (the client already has them).
        self.skip_through = 0
        #: The id of the last event queued for this client (0: none yet).
        self.delivered_through = 0
        self.last_activity = now  # monotonic
        self.last_ping = now
        self.token_expires_at = token_expires_at  # wall clock

    @property
    def user_id(self) -> int:
        return self.info.user_id

    def backlog(self) -> int:
        """Bytes waiting to reach this client: ours (live events held behind a replay
        included) plus the transport's."""
        return self.pending_bytes + self.held_bytes + self.buffered()

    def flush(self) -> int:
        """Write queued frames in one call (unless the transport is full); the number of
        frames written.

        At most `WRITE_WINDOW` bytes of events go per call (replies always go): what stays
        queued is still ours to conflate or count against the backlog bound, instead of
        sitting in the transport's buffer where nothing can be dropped. The hub flushes
        again on its next pass, or when the transport asks for more (`resume_writing`).
        """
        if self.closed or self.paused:
            return 0
        pending = self.pending
        control = self.control
        if not control and len(pending) == 1:  # the common case when idle: no list, no join
            self.pending = []
            self.pending_bytes = 0
            self.writes += 1
            self.write(pending[0].frame)
            return 1
        if not control and not pending:
            return 0
        if self.pending_bytes <= WRITE_WINDOW:
            parts = control
            parts.extend([item.frame for item in pending])
            self.control = []
            self.pending = []
            self.pending_bytes = 0
        else:
            parts = control
            size = sum(len(frame) for frame in control)
            taken = 0
            for item in pending:
                if size >= WRITE_WINDOW and taken:
                    break
                parts.append(item.frame)
                size += len(item.frame)
                taken += 1
            self.control = []
            self.pending = pending[taken:]
            self.pending_bytes -= size
        self.writes += 1
        self.write(parts[0] if len(parts) == 1 else b"".join(parts))
        return len(parts)

    def conflate(self) -> list[int]:
        """Drop queued state events superseded by a newer one of the same entity; the ids
        dropped, oldest first."""
        seen: set[object] = set()
        kept: list[Outgoing] = []
        dropped: list[int] = []
        for item in reversed(self.pending):
            key = item.key
            if key is not None:
                if key in seen:
                    dropped.append(item.event_id)
                    continue
                seen.add(key)
            kept.append(item)
        if dropped:
            kept.reverse()
            self.pending = kept
            self.pending_bytes = sum(len(f) for f in self.control) + sum(
                len(item.frame) for item in kept
            )
            dropped.reverse()
        return dropped
