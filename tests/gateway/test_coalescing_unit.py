"""The hub's writes: what is pending for a connection goes out in one write, a burst bigger
than the write window goes out over several passes, and the backlog bound cuts off a client
that takes nothing, not one that is draining a burst."""

from __future__ import annotations

import asyncio

from bugstream.domain.enums import Role
from bugstream.domain.events import Event, EventName, EventType
from bugstream.domain.protocol import CloseCode
from bugstream.gateway.connection import WRITE_WINDOW, ClientInfo, Connection
from bugstream.gateway.hub import Hub

PROJECT = 7


class WriteLog:
    """A socket that records every write call (one entry per `write`)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.in_transport = 0  # what the "transport" still holds (buffered)

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def buffered(self) -> int:
        return self.in_transport

    def send_ping(self) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        return None

    def frames(self) -> int:
        """Text frames written, over all writes."""
        count = 0
        for data in self.writes:
            i = 0
            while i < len(data):
                length, i = data[i + 1], i + 2
                if length == 126:
                    length, i = int.from_bytes(data[i : i + 2]), i + 2
                elif length == 127:
                    length, i = int.from_bytes(data[i : i + 8]), i + 8
                i += length
                count += 1
        return count


def bug(event_id: int, size: int = 10) -> Event:
    payload = {"id": event_id, "title": "t", "description": "d" * size, "project_id": PROJECT}
    return Event(event_id, EventType.BUG_REPORT, EventName.CREATED, payload, PROJECT, None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def setup(
    clients: int = 1, *, max_backlog: int = 1 << 20, grace: float = 2.0
) -> tuple[Hub, list[tuple[Connection, WriteLog]], list[Connection], Clock]:
    revoked: list[Connection] = []
    clock = Clock()

    def revoke(conn: Connection, code: CloseCode, reason: str) -> None:
        assert code is CloseCode.SLOW_CONSUMER
        conn.closed = True
        revoked.append(conn)

    hub = Hub(
        position=0,
        revoke=revoke,
        max_backlog_bytes=max_backlog,
        conflate_backlog_bytes=max_backlog,
        slow_consumer_seconds=grace,
        clock=clock,
    )
    conns = []
    for i in range(clients):
        log = WriteLog()
        info = ClientInfo(f"c{i}", 100 + i, f"u{i}", "127.0.0.1", 0.0)
        conn = Connection(info, Role.ADMIN, log, now=0.0, token_expires_at=1e12)
        hub.register(conn, Role.ADMIN, {PROJECT}, as_of=0)
        conns.append((conn, log))
    return hub, conns, revoked, clock


async def passes(n: int = 2) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_an_event_alone_is_one_frame_in_one_write() -> None:
    hub, conns, _, _ = setup(clients=3)
    hub.dispatch([bug(1)])
    await passes()
    for _, log in conns:
        assert len(log.writes) == 1
        assert log.frames() == 1
    assert (hub.socket_writes, hub.frames_written) == (3, 3)


async def test_events_dispatched_together_reach_each_client_in_one_write() -> None:
    hub, conns, _, _ = setup(clients=3)
    hub.dispatch([bug(i) for i in range(1, 9)])  # e.g. a relay pass that found 8 commits
    await passes()
    for _, log in conns:
        assert len(log.writes) == 1
        assert log.frames() == 8
    assert hub.frames_written / hub.socket_writes == 8


async def test_a_burst_over_the_write_window_goes_out_over_several_passes_in_order() -> None:
    hub, [(conn, log)], _, _ = setup(max_backlog=64 << 20)
    size = 10_000
    events = [bug(i, size) for i in range(1, 101)]  # ~1 MB: about four windows
    hub.dispatch(events)
    await passes(1)
    assert len(log.writes) == 1
    assert WRITE_WINDOW <= len(log.writes[0]) < WRITE_WINDOW + size + 200
    assert conn.pending, "the rest waits with us, where it can still be conflated"
    await passes(10)
    assert log.frames() == 100
    assert not conn.pending and conn.pending_bytes == 0
    written = b"".join(log.writes)
    positions = [written.index(f'"id":{i},'.encode()) for i in range(1, 101)]
    assert positions == sorted(positions)


async def test_a_paused_transport_gets_nothing_until_it_resumes() -> None:
    hub, [(conn, log)], _, _ = setup()
    conn.paused = True
    hub.dispatch([bug(1), bug(2)])
    await passes()
    assert log.writes == []
    conn.paused = False  # what the adapter does in resume_writing, before flushing
    assert conn.flush() == 2
    assert log.frames() == 2


async def test_a_resumed_transport_gets_all_of_a_backlog_larger_than_the_window() -> None:
    """resume_writing flushes one window; when the kernel takes it all (no new pause, so no
    further resume_writing), the rest must still go out on the hub's next passes. It stayed
    queued for good: the end of a long replay never arrived (a reader stalled after 1,984 of
    2,000 events, test_backpressure)."""
    hub, [(conn, log)], _, _ = setup(max_backlog=64 << 20)
    conn.paused = True  # the transport asked us to stop
    hub.dispatch([bug(i, 10_000) for i in range(1, 61)])  # ~600 kB: more than two windows
    await passes()
    assert log.writes == []
    hub.writable_again(conn)  # resume_writing; the socket takes the window at once
    await passes(1)
    assert len(log.writes) == 1
    await passes(10)
    assert log.frames() == 60
    assert not conn.pending and conn.pending_bytes == 0


async def test_a_client_over_the_bound_that_takes_nothing_is_cut_after_the_grace() -> None:
    hub, [(conn, log)], revoked, clock = setup(max_backlog=100_000, grace=2.0)
    log.in_transport = 150_000  # the transport holds what it could not send: over the bound
    conn.paused = True  # and it asked us to stop writing
    hub.dispatch([bug(1)])
    await passes()
    assert revoked == []  # over the bound, but only just
    clock.now += 1.9
    hub.check_backlogs()
    assert revoked == []
    clock.now += 0.2
    hub.check_backlogs()  # what the sweeper calls every second
    assert revoked == [conn]


async def test_a_client_draining_a_burst_bigger_than_the_bound_is_not_cut() -> None:
    hub, [(_, log)], revoked, clock = setup(max_backlog=100_000, grace=2.0)
    hub.dispatch([bug(i, 10_000) for i in range(1, 101)])  # ~1 MB against a 100 kB bound
    for _ in range(10):
        log.in_transport = 0  # it reads what it is sent...
        clock.now += 1.0  # ...slowly: the whole burst takes longer than the grace
        hub.check_backlogs()
        await passes(1)
    assert revoked == []
    assert log.frames() == 100


async def test_the_counters_say_frames_per_write() -> None:
    hub, _, _, _ = setup(clients=2)
    hub.dispatch([bug(1)])
    await passes()
    hub.dispatch([bug(2), bug(3), bug(4)])
    await passes()
    # 2 clients x (1 write of 1 frame + 1 write of 3 frames)
    assert (hub.socket_writes, hub.frames_written) == (4, 8)
