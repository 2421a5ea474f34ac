"""Presence in the SDK: `client.presence`.

Declare the bug report this client shows with `await client.presence.view_bug(42)` (`None`:
none): the client remembers it and declares it again after every reconnect, as it does the
subscription. Presence messages (who came online, left, views or stopped viewing a bug report)
are not events: they have no event id and are never replayed, so they do not go through
`events()`; register a callback with `@client.presence.on_change`. The state to start from is
`GET /api/v1/projects/{id}/presence` (docs/websocket.md, "Presence").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bugstream.client.wire import payload_of

log = logging.getLogger("bugstream.client")

Send = Callable[[str, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """One `presence` message: `event` is joined, left, viewing or stopped_viewing."""

    event: str
    project_id: int
    user_id: int
    username: str
    #: viewing / stopped_viewing only
    bug_report_id: int | None = None


PresenceCallback = Callable[[PresenceChange], Awaitable[None] | None]
PresenceResyncCallback = Callable[[], Awaitable[None] | None]


class Presence:
    def __init__(self, send: Send) -> None:
        self._send = send
        self._callbacks: list[PresenceCallback] = []
        self._resync_callbacks: list[PresenceResyncCallback] = []
        self._tasks: set[asyncio.Future[None]] = set()
        #: the bug report declared with `view_bug` (None: none)
        self.viewing: int | None = None

    async def view_bug(self, bug_report_id: int | None) -> Any:
        """Show this bug report (None: none) to the others in its project; kept across
        reconnects. Returns `{bug_report_id, project_id, shown}`; raises `NotFound` for a bug
        report the user may not see (and the previous view stays declared)."""
        result = await self._send("presence.view", {"bug_report_id": bug_report_id})
        self.viewing = bug_report_id
        return result

    def on_change(self, callback: PresenceCallback) -> PresenceCallback:
        """Call `callback(change)` for every presence message (usable as a decorator); an
        async callback runs as a task."""
        self._callbacks.append(callback)
        return callback

    def on_resync(self, callback: PresenceResyncCallback) -> PresenceResyncCallback:
        """Call `callback()` when the server says changes may have been missed (it lost its
        presence channel and is back): read `GET /api/v1/projects/{id}/presence` again for
        the projects you show (usable as a decorator; an async callback runs as a task)."""
        self._resync_callbacks.append(callback)
        return callback

    def receive(self, message: dict[str, Any]) -> None:
        """A presence message from the server (the connection's reader calls this)."""
        if message.get("event") == "resync":
            for resync in list(self._resync_callbacks):
                self._run(resync())
            return
        payload = payload_of(message)
        found = payload.get("user")
        user: dict[str, Any] = found if isinstance(found, dict) else {}
        try:
            change = PresenceChange(
                str(message.get("event")),
                int(payload["project_id"]),
                int(user["id"]),
                str(user.get("username", "")),
                int(payload["bug_report_id"]) if "bug_report_id" in payload else None,
            )
        except (KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed presence message: %.200r", message)
            return
        for callback in list(self._callbacks):
            self._run(callback(change))

    def _run(self, result: Awaitable[None] | None) -> None:
        if result is not None:  # an async callback: a task, kept until done
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def renewal(self) -> Awaitable[None] | None:
        """What to run on a new connection to declare the view again (None: nothing)."""
        return None if self.viewing is None else self._renew(self.viewing)

    async def _renew(self, bug_report_id: int) -> None:
        try:
            await self._send("presence.view", {"bug_report_id": bug_report_id})
        except Exception as exc:  # e.g. deleted meanwhile: say so, and show nothing
            log.warning("could not declare the viewed bug report again: %s", exc)
            self.viewing = None
