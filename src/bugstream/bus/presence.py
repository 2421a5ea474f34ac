"""Where presence is kept (domain/presence.py): the interface and its in-process
implementation.

An entry per open connection (socket or SSE stream): its user, the projects it counts in, and
the bug report it views (one at most: a new view replaces the old). The store counts, per
user, their connections and, per (bug report, user), the connections viewing it, and reports
each transition (first / last) to `on_change`, on every instance: `joined` when a user's first
connection appears anywhere, `left` when the last goes, `viewing` / `stopped_viewing` alike.

`MemoryPresence` counts in this process; `RedisPresence` (bus/redis_presence.py) across every
instance on the same Redis, with leases so that a killed instance's connections vanish within
`BUGSTREAM_WS_INSTANCE_TTL_SECONDS`. Which one runs follows the bus URL (bus/factory.py).

Calls for one connection must not overlap (the gateway chains them: gateway/presence.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Protocol

from bugstream.domain.presence import PresenceChange, PresenceEvent, PresenceReader

OnChange = Callable[[list[PresenceChange]], None]
#: Told that transitions may have been missed (the channel was lost and is back): whoever
#: follows presence must read the snapshot again.
OnResync = Callable[[], None]


@dataclass(frozen=True, slots=True)
class PresenceEntry:
    user_id: int
    username: str
    project_ids: tuple[int, ...]
    bug_report_id: int | None = None
    #: the project of `bug_report_id`
    bug_project_id: int | None = None


class PresenceStore(PresenceReader, Protocol):
    async def start(self, on_change: OnChange, on_resync: OnResync) -> None:
        """Begin delivering changes (and any upkeep: leases); once, on the event loop.
        `on_resync` is called when changes may have been lost (never, in one process)."""

    async def stop(self) -> None:
        """Remove this instance's entries (reporting who left) and stop."""

    async def connect(self, connection_id: str, entry: PresenceEntry) -> None: ...

    async def view(
        self, connection_id: str, bug_report_id: int | None, project_id: int | None
    ) -> None:
        """The connection views this bug report now (None: none); unknown connections are
        ignored (closed meanwhile)."""

    async def disconnect(self, connection_id: str) -> None: ...

    async def regroup(self, connection_id: str, project_ids: tuple[int, ...]) -> None:
        """The user's projects changed (membership): later `left` goes to these. Reports
        nothing by itself: the project's members see the membership event."""


class MemoryPresence:
    def __init__(self) -> None:
        self._entries: dict[str, PresenceEntry] = {}
        self._online: dict[int, int] = {}
        # project id -> bug report id -> user id -> connections viewing it
        self._viewing: dict[int, dict[int, dict[int, int]]] = {}
        self._on_change: OnChange = lambda changes: None

    async def start(self, on_change: OnChange, on_resync: OnResync) -> None:
        del on_resync  # nothing is lost in one process
        self._on_change = on_change

    async def stop(self) -> None:
        for connection_id in list(self._entries):
            await self.disconnect(connection_id)
        self._on_change = lambda changes: None

    async def connect(self, connection_id: str, entry: PresenceEntry) -> None:
        changes: list[PresenceChange] = []
        if connection_id in self._entries:
            return
        self._entries[connection_id] = entry
        count = self._online.get(entry.user_id, 0) + 1
        self._online[entry.user_id] = count
        if count == 1:
            changes.append(_change(PresenceEvent.JOINED, entry))
        self._view_delta(entry, 1, changes)
        self._report(changes)

    async def view(
        self, connection_id: str, bug_report_id: int | None, project_id: int | None
    ) -> None:
        entry = self._entries.get(connection_id)
        if entry is None or entry.bug_report_id == bug_report_id:
            return
        changes: list[PresenceChange] = []
        self._view_delta(entry, -1, changes)
        entry = replace(entry, bug_report_id=bug_report_id, bug_project_id=project_id)
        self._entries[connection_id] = entry
        self._view_delta(entry, 1, changes)
        self._report(changes)

    async def disconnect(self, connection_id: str) -> None:
        entry = self._entries.pop(connection_id, None)
        if entry is None:
            return
        changes: list[PresenceChange] = []
        self._view_delta(entry, -1, changes)
        count = self._online[entry.user_id] - 1
        if count:
            self._online[entry.user_id] = count
        else:
            del self._online[entry.user_id]
            changes.append(_change(PresenceEvent.LEFT, entry))
        self._report(changes)

    async def regroup(self, connection_id: str, project_ids: tuple[int, ...]) -> None:
        entry = self._entries.get(connection_id)
        if entry is not None:
            self._entries[connection_id] = replace(entry, project_ids=project_ids)

    async def connections(self, user_ids: Collection[int]) -> dict[int, int]:
        return {u: self._online[u] for u in user_ids if u in self._online}

    async def viewers(self, project_id: int) -> dict[int, set[int]]:
        bugs = self._viewing.get(project_id, {})
        return {bug: set(users) for bug, users in bugs.items()}

    def _view_delta(self, entry: PresenceEntry, delta: int, changes: list[PresenceChange]) -> None:
        bug, project = entry.bug_report_id, entry.bug_project_id
        if bug is None or project is None:
            return
        users = self._viewing.setdefault(project, {}).setdefault(bug, {})
        count = users.get(entry.user_id, 0) + delta
        if count > 0:
            users[entry.user_id] = count
            if count == 1 and delta > 0:
                changes.append(_change(PresenceEvent.VIEWING, entry))
            return
        users.pop(entry.user_id, None)
        if not users:
            del self._viewing[project][bug]
            if not self._viewing[project]:
                del self._viewing[project]
        changes.append(_change(PresenceEvent.STOPPED_VIEWING, entry))

    def _report(self, changes: list[PresenceChange]) -> None:
        if changes:
            self._on_change(changes)


def _change(event: PresenceEvent, entry: PresenceEntry) -> PresenceChange:
    if event in (PresenceEvent.JOINED, PresenceEvent.LEFT):
        return PresenceChange(event, entry.user_id, entry.username, entry.project_ids)
    assert entry.bug_project_id is not None
    return PresenceChange(
        event, entry.user_id, entry.username, (entry.bug_project_id,), entry.bug_report_id
    )
