"""The audience race: a membership removal committed just before a project event.

The gateway filters each event with audiences held in memory (gateway/hub.py). They must never
be older than the membership changes committed before the event: a removed member must not
receive the next event of the project, however close behind the removal it commits, and a
connection whose access snapshot predates a removal the hub already processed must not either.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from bugstream.domain.enums import Role, UserStatus
from bugstream.domain.events import Event, EventName, EventType
from bugstream.domain.models import BugCreate, User
from bugstream.domain.protocol import CloseCode
from bugstream.gateway.connection import ClientInfo, Connection
from bugstream.gateway.hub import Hub
from bugstream.gateway.user_access import AccessRevoked, SnapshotTooOld
from bugstream.services import bugs, projects
from tests.support.factory import Factory
from tests.support.live import Client, LiveServer, live_server

ROUNDS = 50


# ---- over real sockets -----------------------------------------------------------------


async def _until_marker(client: Client, marker_bug_id: int) -> list[dict[str, Any]]:
    """Every event up to the marker bug's `created` (which the leaver may see)."""
    found: list[dict[str, Any]] = []
    while True:
        message = await client.next()
        if "event_id" not in message:
            continue
        found.append(message)
        payload = message["payload"]
        if (message["type"], message["event"]) == ("bug_report", "created") and payload[
            "id"
        ] == marker_bug_id:
            return found


def _project_of(message: dict[str, Any]) -> int | None:
    payload = message["payload"]
    if message["type"] == "project":
        return int(payload["id"])
    if message["type"] in ("bug_report", "comment", "membership"):
        return int(payload["project_id"])
    return None


async def _round(
    live: LiveServer,
    factory: Factory,
    keeper: User,
    leaver: User,
    marker_project: int,
    i: int,
) -> tuple[list[dict[str, Any]], int, int]:
    """One race; the leaver's events of it, the removal's event id and the late bug's id."""
    admin = await factory.admin()
    project = await factory.project(keeper, leaver, name=f"race {i}")

    async def remove_then_write() -> tuple[int, int]:
        removal = await projects.remove_member(factory.ctx, admin, project.id, leaver.id)
        late = await bugs.create_bug(
            factory.ctx, admin, BugCreate(project_id=project.id, title=f"after removal {i}")
        )
        return removal.events[-1].event_id, late.value.id

    # A fresh connection of the leaver opens while the removal commits: its access snapshot
    # may come from before or after it.
    fresh, (removal_id, late_bug) = await asyncio.gather(live.connect(leaver), remove_then_write())
    marker = await bugs.create_bug(
        factory.ctx, admin, BugCreate(project_id=marker_project, title=f"marker {i}")
    )
    seen = await _until_marker(fresh, marker.value.id)
    await fresh.close()
    return seen, removal_id, late_bug


async def test_a_removed_member_never_gets_the_event_committed_right_after(
    factory: Factory,
) -> None:
    keeper = await factory.user(Role.DEVELOPER, name="keeper")
    leaver = await factory.user(Role.DEVELOPER, name="leaver")
    marker_project = await factory.project(keeper, leaver, name="marker")
    async with live_server(factory.ctx) as live:
        leaver_ws = await live.connect(leaver)
        keeper_ws = await live.connect(keeper)
        late_bugs: list[int] = []
        removals: dict[int, int] = {}  # project id -> event id of the leaver's removal
        for i in range(ROUNDS):
            seen, removal_id, late_bug = await _round(
                live, factory, keeper, leaver, marker_project.id, i
            )
            late_bugs.append(late_bug)
            # The fresh connection: nothing of the project after the removal.
            leaked = [
                m
                for m in seen
                if m["event_id"] > removal_id
                and m["type"] == "bug_report"
                and m["payload"]["id"] == late_bug
            ]
            assert leaked == [], f"round {i}: a fresh connection got {leaked}"
            for m in seen:
                project_id = _project_of(m)
                if project_id is not None and project_id != marker_project.id:
                    removals.setdefault(project_id, removal_id)

        marker_bug = (
            await bugs.create_bug(
                factory.ctx,
                await factory.admin(),
                BugCreate(project_id=marker_project.id, title="the end"),
            )
        ).value
        stream = await _until_marker(leaver_ws, marker_bug.id)
        # The connection open all along saw each removal, and nothing of the project after it.
        removed = {
            _project_of(m): m["event_id"]
            for m in stream
            if (m["type"], m["event"]) == ("membership", "removed")
            and m["payload"]["user_id"] == leaver.id
        }
        assert len(removed) == ROUNDS
        after_removal = [
            m
            for m in stream
            if _project_of(m) in removed and m["event_id"] > removed[_project_of(m)]
        ]
        assert after_removal == []
        assert not {m["payload"]["id"] for m in stream if m["type"] == "bug_report"} & set(
            late_bugs
        )

        # The member who stayed got every one of the late events.
        kept = await keeper_ws.events(quiet=0.3)
        got = {
            m["payload"]["id"] for m in kept if (m["type"], m["event"]) == ("bug_report", "created")
        }
        assert set(late_bugs) <= got


# ---- the hub on its own ----------------------------------------------------------------


class RecordingSink:
    """A socket that keeps what the hub writes (already-encoded text frames)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed: tuple[int, str] | None = None

    def write(self, data: bytes) -> None:
        self.data += data

    def buffered(self) -> int:
        return 0

    def writable(self) -> bool:
        return True

    def send_ping(self) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def event_ids(self) -> list[int]:
        """The `event_id` of every event frame written (frames are unmasked text frames)."""
        ids: list[int] = []
        data, i = bytes(self.data), 0
        while i < len(data):
            assert data[i] == 0x81
            length, i = data[i + 1], i + 2
            if length == 126:
                length, i = int.from_bytes(data[i : i + 2]), i + 2
            elif length == 127:
                length, i = int.from_bytes(data[i : i + 8]), i + 8
            message = orjson.loads(data[i : i + length])
            i += length
            if "event_id" in message:
                ids.append(message["event_id"])
        return ids


USER, OTHER, PROJECT = 10, 11, 5


def membership(event_id: int, name: EventName, user_id: int = USER) -> Event:
    payload = {"project_id": PROJECT, "user_id": user_id, "created_at": "2026-01-05T09:00:00Z"}
    return Event(event_id, EventType.MEMBERSHIP, name, payload, PROJECT, user_id)


def bug(event_id: int) -> Event:
    payload = {"id": event_id, "title": "t", "project_id": PROJECT}
    return Event(event_id, EventType.BUG_REPORT, EventName.CREATED, payload, PROJECT, None)


def user_status(event_id: int, status: UserStatus) -> Event:
    payload = {"id": USER, "role": "developer", "status": status.value}
    return Event(event_id, EventType.USER, EventName.STATUS_CHANGED, payload, None, USER)


def connection(user_id: int) -> tuple[Connection, RecordingSink]:
    sink = RecordingSink()
    info = ClientInfo(f"c{user_id}", user_id, f"user{user_id}", "127.0.0.1", 0.0)
    return Connection(info, Role.DEVELOPER, sink, now=0.0, token_expires_at=1e12), sink


def make_hub(position: int = 0, access_log_size: int = 100) -> tuple[Hub, list[Any]]:
    revoked: list[Any] = []

    def revoke(conn: Connection, code: CloseCode, reason: str) -> None:
        revoked.append((conn, code))

    hub = Hub(
        position=position,
        revoke=revoke,
        max_backlog_bytes=1 << 20,
        access_log_size=access_log_size,
    )
    return hub, revoked


async def flushed() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_a_snapshot_older_than_a_processed_removal_does_not_see_the_next_event() -> None:
    hub, _ = make_hub()
    member, member_sink = connection(OTHER)
    hub.register(member, Role.DEVELOPER, {PROJECT}, as_of=0)
    hub.dispatch([membership(1, EventName.ADDED), bug(2), membership(3, EventName.REMOVED)])

    # The user's access was read as of event 2 (still a member), and registers after the
    # hub has processed the removal (event 3).
    stale, stale_sink = connection(USER)
    assert hub.register(stale, Role.DEVELOPER, {PROJECT}, as_of=2) == 3
    hub.dispatch([bug(4)])
    await flushed()
    assert stale_sink.event_ids() == []
    assert member_sink.event_ids() == [1, 2, 3, 4]  # members see membership changes too


async def test_a_snapshot_older_than_a_processed_addition_sees_the_next_event() -> None:
    hub, _ = make_hub()
    hub.dispatch([bug(1), membership(2, EventName.ADDED)])
    stale, sink = connection(USER)
    hub.register(stale, Role.DEVELOPER, set(), as_of=1)  # not yet a member as of event 1
    hub.dispatch([bug(3)])
    await flushed()
    assert sink.event_ids() == [3]


async def test_a_snapshot_the_access_log_no_longer_reaches_must_be_reloaded() -> None:
    hub, _ = make_hub(access_log_size=2)
    hub.dispatch(
        [
            membership(1, EventName.ADDED, OTHER),
            membership(2, EventName.REMOVED, OTHER),
            membership(3, EventName.ADDED, OTHER),
        ]
    )
    conn, _ = connection(USER)
    with pytest.raises(SnapshotTooOld):
        hub.register(conn, Role.DEVELOPER, {PROJECT}, as_of=0)
    assert hub.register(conn, Role.DEVELOPER, {PROJECT}, as_of=3) == 3


async def test_a_snapshot_from_before_a_suspension_is_refused() -> None:
    hub, _ = make_hub()
    hub.dispatch([user_status(1, UserStatus.SUSPENDED)])
    conn, _ = connection(USER)
    with pytest.raises(AccessRevoked):
        hub.register(conn, Role.DEVELOPER, {PROJECT}, as_of=0)
    assert hub.connection_count == 0
