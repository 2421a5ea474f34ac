"""The hub: every connection of this instance, who may see what, and the fan-out.

Contract:
- `dispatch(events)` must be called with every event, in event-id order, exactly once. It
  encodes each event once (and compresses it once, if a recipient negotiated
  permessage-deflate), appends the frame to the pending list of every connection in its
  audience, and schedules one flush pass. Per connection, frames keep event-id order.
- Audiences come from memory: `_project_users` holds, for each project, the connected users
  who are members; admins see every project. Access-changing events (membership, user role or
  status, project deletion) update that index in the same pass that delivers them, so an event
  is never filtered with an audience older than the changes committed before it.
- `register` makes a connection live as of the hub's position: it receives every event after
  it. Its access snapshot (as of an event id) is brought up to the hub's position by replaying
  the recent access events kept in `_access_log`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Set
from typing import assert_never

from bugstream.domain.audience import may_see
from bugstream.domain.catalog import ACCESS_CHANGING, CATALOG, Scope
from bugstream.domain.enums import Role, UserStatus
from bugstream.domain.events import Event, EventName, EventType
from bugstream.domain.protocol import CloseCode
from bugstream.gateway.connection import WRITE_WINDOW, Connection, Outgoing
from bugstream.gateway.event_frames import outgoing, skipped_frame
from bugstream.gateway.telemetry import NullTelemetry, Telemetry
from bugstream.gateway.user_access import AccessRevoked, SnapshotTooOld, UserAccess

Revoke = Callable[[Connection, CloseCode, str], None]
_NO_USERS: frozenset[int] = frozenset()


class Hub:
    def __init__(
        self,
        *,
        position: int,
        revoke: Revoke,
        max_backlog_bytes: int,
        conflate_backlog_bytes: int | None = None,
        slow_consumer_seconds: float = 0.0,
        telemetry: Telemetry | None = None,
        access_log_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.position = position
        self._revoke = revoke
        self._max_backlog = max_backlog_bytes
        self._slow_after = slow_consumer_seconds
        self._clock = clock
        # Connections over the backlog bound: since when (monotonic) they took nothing, and
        # their write count then.
        self._over_bound: dict[Connection, tuple[float, int]] = {}
        self._conflate_at = conflate_backlog_bytes or max_backlog_bytes // 4
        self._telemetry: Telemetry = telemetry or NullTelemetry()
        # Commit times of the events dispatched since the last flush pass (for latency).
        self._unflushed: list[float] = []
        self._users: dict[int, UserAccess] = {}
        self._admins: set[int] = set()
        self._project_users: dict[int, set[int]] = {}
        # The connections in each project's audience (members and admins), built on first use
        # and dropped whenever a connection comes or goes or access changes: the fan-out
        # walks one list per event instead of users, then their connections.
        self._project_audience: dict[int, list[Connection]] = {}
        self._access_log: deque[Event] = deque(maxlen=access_log_size)
        # The log holds every access event with an id above this.
        self._access_log_floor = position
        self._dirty: list[Connection] = []
        self._flush_scheduled = False
        #: Socket writes made by flush passes, and the frames they carried (their ratio is
        #: the coalescing: frames per write grows with load, 1 when idle).
        self.socket_writes = 0
        self.frames_written = 0
        self._connection_count = 0

    # ---- connections ------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        return self._connection_count

    def connections(self) -> list[Connection]:
        return [c for u in self._users.values() for c in u.connections]

    def connections_of(self, user_id: int) -> list[Connection]:
        access = self._users.get(user_id)
        return list(access.connections) if access else []

    def register(self, conn: Connection, role: Role, project_ids: Iterable[int], as_of: int) -> int:
        """Make `conn` live; returns the position after which it receives every event."""
        access = self._users.get(conn.user_id)
        if access is None:
            if as_of < self._access_log_floor:
                raise SnapshotTooOld
            access = UserAccess(role, project_ids, conn.info.username)
            for event in self._access_log:
                if event.event_id > as_of:
                    if self._revokes(conn.user_id, event):
                        raise AccessRevoked
                    self._apply_access(conn.user_id, access, event)
            self._users[conn.user_id] = access
            self._index_user(conn.user_id, access)
        conn.role = access.role
        access.connections.append(conn)
        self._connection_count += 1
        self._project_audience.clear()
        return self.position

    def known_user(self, user_id: int) -> UserAccess | None:
        """The access of a user who has a connection here: current as of `position` (every
        access event up to it applied), so another connection of theirs needs no database."""
        return self._users.get(user_id)

    def register_known(self, conn: Connection) -> int:
        """`register` for a user `known_user` returns (call it without awaiting in between)."""
        access = self._users[conn.user_id]
        conn.role = access.role
        access.connections.append(conn)
        self._connection_count += 1
        self._project_audience.clear()
        return self.position

    def unregister(self, conn: Connection) -> None:
        access = self._users.get(conn.user_id)
        if access is None or conn not in access.connections:
            return
        access.connections.remove(conn)
        self._connection_count -= 1
        self._project_audience.clear()
        self._over_bound.pop(conn, None)
        self._notify_drained(conn)
        if not access.connections:
            self._unindex_user(conn.user_id, access)
            del self._users[conn.user_id]

    def _index_user(self, user_id: int, access: UserAccess) -> None:
        if access.role is Role.ADMIN:
            self._admins.add(user_id)
        for project_id in access.projects:
            self._project_users.setdefault(project_id, set()).add(user_id)

    def _unindex_user(self, user_id: int, access: UserAccess) -> None:
        self._admins.discard(user_id)
        for project_id in access.projects:
            users = self._project_users.get(project_id)
            if users is not None:
                users.discard(user_id)
                if not users:
                    del self._project_users[project_id]

    # ---- access changes -----------------------------------------------------------------

    @staticmethod
    def _apply_access(user_id: int, access: UserAccess, event: Event) -> None:
        """Apply one access event to a user's access record (not to the index)."""
        if event.type is EventType.MEMBERSHIP and event.user_id == user_id:
            if event.event is EventName.ADDED:
                access.projects.add(int(event.payload["project_id"]))
            else:
                access.projects.discard(int(event.payload["project_id"]))
        elif event.type is EventType.PROJECT and event.event is EventName.DELETED:
            access.projects.discard(int(event.payload["id"]))
        elif event.type is EventType.USER and event.user_id == user_id:
            access.role = Role(event.payload["role"])
            access.username = str(event.payload.get("username", access.username))

    @staticmethod
    def _revokes(user_id: int, event: Event) -> bool:
        return (
            event.type is EventType.USER
            and event.user_id == user_id
            and (
                event.event is EventName.DELETED
                or event.payload.get("status") != UserStatus.ACTIVE.value
            )
        )

    @staticmethod
    def _is_access_event(event: Event) -> bool:
        return (event.type, event.event) in ACCESS_CHANGING

    def _before_delivery(self, event: Event) -> None:
        """Changes that widen an audience apply before the event is delivered."""
        self._project_audience.clear()
        if event.type is EventType.MEMBERSHIP and event.event is EventName.ADDED:
            user_id = int(event.payload["user_id"])
            project_id = int(event.payload["project_id"])
            access = self._users.get(user_id)
            if access is not None:
                access.projects.add(project_id)
                self._project_users.setdefault(project_id, set()).add(user_id)

    def _after_delivery(self, event: Event) -> None:
        """Changes that narrow an audience apply after it (the leaving user sees why)."""
        self._project_audience.clear()
        if event.type is EventType.MEMBERSHIP and event.event is EventName.REMOVED:
            user_id = int(event.payload["user_id"])
            project_id = int(event.payload["project_id"])
            access = self._users.get(user_id)
            if access is not None:
                access.projects.discard(project_id)
            users = self._project_users.get(project_id)
            if users is not None:
                users.discard(user_id)
        elif event.type is EventType.PROJECT and event.event is EventName.DELETED:
            project_id = int(event.payload["id"])
            for user_id in self._project_users.pop(project_id, set()):
                self._users[user_id].projects.discard(project_id)
        elif event.type is EventType.USER and event.user_id is not None:
            self._user_changed(event)

    def _user_changed(self, event: Event) -> None:
        assert event.user_id is not None
        access = self._users.get(event.user_id)
        if access is None:
            return
        if self._revokes(event.user_id, event):
            why = "account deleted" if event.event is EventName.DELETED else "account not active"
            for conn in list(access.connections):
                self._revoke(conn, CloseCode.FORBIDDEN, why)
            return
        access.username = str(event.payload.get("username", access.username))
        role = Role(event.payload["role"])
        if role is not access.role:
            self._project_audience.clear()
            access.role = role
            for conn in access.connections:
                conn.role = role
            if role is Role.ADMIN:
                self._admins.add(event.user_id)
            else:
                self._admins.discard(event.user_id)

    # ---- fan-out ----------------------------------------------------------------------

    def _audience(self, event: Event) -> list[Connection]:
        """Every connection that may see `event` (before its subscription filter)."""
        scope = CATALOG[event.type].scope
        if scope is Scope.PROJECT:
            return self.project_audience(event.project_id or 0)
        if scope is Scope.PERSONAL:
            return self._connections_of((event.user_id,) if event.user_id is not None else ())
        if scope is Scope.USER:  # admins and the user themselves
            if event.user_id is None or event.user_id in self._admins:
                return self._connections_of(self._admins)
            return self._connections_of((*self._admins, event.user_id))
        assert_never(scope)

    def project_audience(self, project_id: int) -> list[Connection]:
        """The connections of the project's members and of admins, as of now (not a copy)."""
        audience = self._project_audience.get(project_id)
        if audience is None:
            members = self._project_users.get(project_id)
            user_ids = self._admins if not members else members | self._admins
            audience = self._connections_of(user_ids)
            self._project_audience[project_id] = audience
        return audience

    def project_users(self, project_id: int) -> Set[int]:
        """The project's members connected here (with `admin_ids`: `project_audience`'s
        users). Not a copy."""
        return self._project_users.get(project_id, _NO_USERS)

    @property
    def admin_ids(self) -> Set[int]:
        """The admins connected here. Not a copy."""
        return self._admins

    def _connections_of(self, user_ids: Iterable[int]) -> list[Connection]:
        users = self._users
        return [c for u in user_ids if (a := users.get(u)) is not None for c in a.connections]

    def dispatch(self, events: Iterable[Event]) -> None:
        """Queue each event for its audience. This loop runs once per recipient of every
        event, so it is written out flat: no call per recipient but for a narrowed
        subscription, an append to the connection's pending list, a flag."""
        dirty = self._dirty
        for event in events:
            event_id = event.event_id
            if event_id <= self.position:
                continue  # already delivered (an at-least-once source)
            self.position = event_id
            access_event = self._is_access_event(event)
            if access_event:
                self._access_log.append(event)
                if len(self._access_log) == self._access_log.maxlen:
                    self._access_log_floor = self._access_log[0].event_id
                self._before_delivery(event)
            plain = outgoing(event)
            packed = None  # its permessage-deflate variant, made for the first that needs it
            recipients = 0
            for conn in self._audience(event):
                if event_id <= conn.skip_through or conn.closed:
                    continue
                sub = conn.subscription
                if (sub.projects is not None or sub.bug_reports is not None) and not sub.wants(
                    event, conn.info.user_id
                ):
                    continue
                conn.delivered_through = event_id
                recipients += 1
                item = plain
                if conn.deflate_bits:
                    if packed is None:
                        packed = plain.deflated()
                    if packed.window_bits <= conn.deflate_bits:
                        item = packed
                size = len(item.frame)
                if conn.held is not None:  # behind a replay: counts toward its backlog
                    conn.held.append(item)
                    conn.held_bytes += size
                    if conn.held_bytes > self._max_backlog:
                        self._check_bound(conn, self._clock())
                    continue
                conn.pending.append(item)
                conn.pending_bytes += size
                if not conn.dirty:
                    conn.dirty = True
                    dirty.append(conn)
            if recipients:
                self._unflushed.append(event.committed_at)
                self._telemetry.message_out(f"{event.type.value}.{event.event.value}", recipients)
            if access_event:
                self._after_delivery(event)
        if dirty and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_all)
        if not self._access_log:
            self._access_log_floor = self.position

    def restart_at(self, position: int) -> None:
        """Go on after `position` when the events before it are lost (no connection left):
        the access history no longer reaches back, so older snapshots must be reloaded."""
        self.position = position
        self._access_log.clear()
        self._access_log_floor = position

    def visible(self, conn: Connection, event: Event) -> bool:
        """Whether `conn` may see `event` now and wants it (for replays; the REST history
        applies the same rule, `may_see`, to the caller's access)."""
        if not conn.subscription.wants(event, conn.user_id):
            return False
        access = self._users.get(conn.user_id)
        projects = access.projects if access is not None else ()
        return may_see(conn.user_id, conn.user_id in self._admins, projects, event)

    def hold(self, conn: Connection) -> None:
        """Keep live events for `conn` aside until `release` (a replay goes first)."""
        if conn.held is None:
            conn.held = []

    def release(self, conn: Connection) -> None:
        """Queue the held live events after whatever was sent meanwhile."""
        held, conn.held = conn.held, None
        conn.held_bytes = 0
        for item in held or ():
            self._enqueue(conn, item, len(item.frame))

    def send(self, conn: Connection, frame: bytes) -> None:
        """Queue a reply for one connection (ack, error, pong...): ahead of its events."""
        if conn.closed:
            return
        conn.control.append(frame)
        conn.pending_bytes += len(frame)
        self._mark_dirty(conn)

    def send_outgoing(self, conn: Connection, item: Outgoing) -> None:
        """Queue one encoded event for one connection (a replay), in order with its other
        events; the frame is shared by every connection it is replayed to."""
        item = item.for_window(conn.deflate_bits)
        self._enqueue(conn, item, len(item.frame))

    def _enqueue(self, conn: Connection, item: Outgoing, size: int) -> None:
        if conn.closed:
            return
        conn.pending.append(item)
        conn.pending_bytes += size
        if not conn.dirty:
            self._mark_dirty(conn)

    def _mark_dirty(self, conn: Connection) -> None:
        if conn.dirty:
            return
        conn.dirty = True
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_all)

    def _flush_all(self) -> None:
        """One write per connection with anything queued; lagging clients are conflated, and
        cut off (4101, to resume) when even that leaves them over the bound."""
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        conflate_at = self._conflate_at
        writes = frames = 0
        for conn in dirty:
            conn.dirty = False
            if conn.closed:
                continue
            written = conn.flush()
            if written:
                writes += 1
                frames += written
                if conn.pending and not conn.paused:
                    self._mark_dirty(conn)  # more than one window: the rest next pass
            if conn.pending_bytes + conn.buffered() > conflate_at:
                self._relieve(conn)
            if conn.drain_waiter is not None:
                self._notify_drained(conn)
        self.socket_writes += writes
        self.frames_written += frames
        if self._unflushed:
            now = time.time()
            self._telemetry.delivered([now - committed for committed in self._unflushed])
            self._unflushed = []

    def _relieve(self, conn: Connection) -> None:
        dropped = conn.conflate()
        if dropped:
            self._telemetry.events_dropped("conflated", len(dropped))
            self.send(conn, skipped_frame(dropped))
        self._check_bound(conn, self._clock())

    def _check_bound(self, conn: Connection, now: float) -> None:
        """Cut off a client whose backlog is over the bound and who took nothing for
        `slow_consumer_seconds`.

        A burst larger than the bound (a batch of events committed together, a replay) is
        not the client's fault: one that reads keeps taking writes while it drains it. Queued
        events are frames shared by every recipient, so the wait costs little memory; what
        one client owns (the transport's buffer) stays within a write window.
        """
        if conn.closed or conn.backlog() <= self._max_backlog:
            self._over_bound.pop(conn, None)
            return
        since, writes = self._over_bound.get(conn, (now, -1))
        if writes != conn.writes:  # it took something: the wait starts again
            self._over_bound[conn] = (now, conn.writes)
            return
        if now - since >= self._slow_after:
            del self._over_bound[conn]
            self._telemetry.events_dropped("slow_consumer", len(conn.pending))
            self._revoke(conn, CloseCode.SLOW_CONSUMER, "client is not reading fast enough")

    def check_backlogs(self) -> None:
        """Re-check the clients over the bound (called by the sweeper: a stalled client gets
        no flush pass when no new event comes)."""
        now = self._clock()
        for conn in list(self._over_bound):
            self._check_bound(conn, now)

    async def wait_drained(self, conn: Connection, low_water: int = WRITE_WINDOW) -> None:
        """Return once at most `low_water` bytes wait for `conn` (ours and the transport's),
        or it closed. A replay hands its events over this way, as the client drains them,
        instead of queueing all of them at once (issue 11.2). A client that takes nothing for
        `slow_consumer_seconds` meanwhile is cut off (4101), as one over the bound would be:
        the rest of its replay is its backlog too."""
        while not conn.closed and conn.pending_bytes + conn.buffered() > low_water:
            waiter = asyncio.get_running_loop().create_future()
            conn.drain_waiter = waiter
            writes = conn.writes
            try:
                async with asyncio.timeout(max(self._slow_after, 0.05)):
                    await waiter
            except TimeoutError:
                if conn.writes == writes:  # it took nothing: a slow consumer, as in flushes
                    self._telemetry.events_dropped("slow_consumer", len(conn.pending))
                    self._revoke(conn, CloseCode.SLOW_CONSUMER, "client is not reading fast enough")
                    return
            finally:
                conn.drain_waiter = None

    def _notify_drained(self, conn: Connection) -> None:
        waiter = conn.drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def writable_again(self, conn: Connection) -> None:
        """The transport drained below its low-water mark: the next flush pass writes what
        waits (a window at a time, as for every connection) and wakes a replay waiting for
        room. Flushing here directly wrote one window and forgot the rest when the socket
        took it without pausing again: the end of a long replay stayed queued for good."""
        conn.paused = False
        self._mark_dirty(conn)

    def flush_now(self, conn: Connection) -> None:
        """Write what is pending for `conn` at once (before closing it)."""
        written = conn.flush()
        if written:
            self.socket_writes += 1
            self.frames_written += written
