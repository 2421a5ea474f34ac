"""Declarative subscriptions: what the application wants, kept by the client across
reconnects.

A server-side subscription belongs to one connection; after a reconnect the server sends
everything again. The client therefore keeps the declared subscription, sends it again after
every welcome, and filters events by the same rule the server applies (the event catalog's
scopes), so that an event outside it never reaches the application, even in the moment
between a welcome and the server's acknowledgement of the renewed subscription, or in the
replay that precedes it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bugstream.client.events import Event
from bugstream.domain.catalog import CATALOG, EventType, Scope

log = logging.getLogger("bugstream.client")

Send = Callable[[str, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Subscription:
    """`everything` (the default), or only the listed projects and bug reports (plus personal
    events, which always arrive)."""

    everything: bool = True
    projects: frozenset[int] = field(default_factory=frozenset)
    bug_reports: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def only(cls, projects: Iterable[int] = (), bug_reports: Iterable[int] = ()) -> Subscription:
        return cls(False, frozenset(projects), frozenset(bug_reports))

    def adding(self, projects: Iterable[int], bug_reports: Iterable[int]) -> Subscription:
        if self.everything:
            return Subscription.only(projects, bug_reports)
        return Subscription.only(self.projects | set(projects), self.bug_reports | set(bug_reports))

    def removing(self, projects: Iterable[int], bug_reports: Iterable[int]) -> Subscription:
        if self.everything:
            raise ValueError("subscribe to what you want before unsubscribing (as the server)")
        return Subscription.only(self.projects - set(projects), self.bug_reports - set(bug_reports))

    def renewal(self) -> dict[str, Any] | None:
        """The message that sets a fresh connection to this subscription (None: nothing to
        send, a connection starts with everything)."""
        if self.everything:
            return None
        if not self.projects and not self.bug_reports:  # personal events only
            return {"type": "unsubscribe", "payload": {"all": True}}
        payload = {"projects": sorted(self.projects), "bug_reports": sorted(self.bug_reports)}
        return {"type": "subscribe", "payload": payload}

    def wants(self, event: Event, user_id: int | None) -> bool:
        """The server's rule (gateway.connection.Subscription.wants) on what a client sees."""
        if self.everything:
            return True
        try:
            meaning = CATALOG[EventType(event.type)]
        except ValueError:
            return True  # a type this SDK does not know: not ours to drop
        if meaning.scope is not Scope.PROJECT:
            return True  # personal events always arrive
        payload = event.raw
        if event.type == EventType.MEMBERSHIP and payload.get("user_id") == user_id:
            return True  # news of one's own access
        project_id = payload.get("id") if event.type == EventType.PROJECT else None
        if project_id is None:
            project_id = payload.get("project_id")
        if project_id in self.projects:
            return True
        field_name = meaning.bug_report_field
        return field_name is not None and payload.get(field_name) in self.bug_reports


class Subscriptions:
    """`client.subscriptions`: change the declared subscription (the server is told at once,
    and again after every reconnect) and read it (`current`)."""

    def __init__(self, send: Send, initial: Subscription | None = None) -> None:
        self._send = send
        self.current = initial or Subscription()

    async def subscribe(
        self, *, projects: Iterable[int] = (), bug_reports: Iterable[int] = ()
    ) -> Any:
        """Narrow the stream to these projects and bug reports (added to earlier ones;
        personal events always arrive). Returns the server's subscription; `NotFound` for one
        the user cannot see, and the subscription stays as it was."""
        projects, bug_reports = list(projects), list(bug_reports)
        wanted = self.current.adding(projects, bug_reports)
        result = await self._send("subscribe", {"projects": projects, "bug_reports": bug_reports})
        self.current = wanted
        return result

    async def unsubscribe(
        self, *, projects: Iterable[int] = (), bug_reports: Iterable[int] = ()
    ) -> Any:
        """Remove projects and bug reports from a narrowed subscription."""
        projects, bug_reports = list(projects), list(bug_reports)
        wanted = self.current.removing(projects, bug_reports)
        result = await self._send("unsubscribe", {"projects": projects, "bug_reports": bug_reports})
        self.current = wanted
        return result

    async def subscribe_all(self) -> Any:
        """Back to every event the user may see."""
        result = await self._send("subscribe", {"all": True})
        self.current = Subscription()
        return result

    def wants(self, event: Event, user_id: int | None) -> bool:
        return self.current.wants(event, user_id)

    def renewal(self) -> Awaitable[None] | None:
        """What to run on a new connection to narrow it again (None: nothing to do)."""
        message = self.current.renewal()
        if message is None:
            return None
        return self._renew(message)

    async def _renew(self, message: dict[str, Any]) -> None:
        try:
            await self._send(message["type"], message["payload"])
        except Exception as exc:  # events stay filtered here meanwhile; say why it failed
            log.warning("could not renew the subscription on this connection: %s", exc)
