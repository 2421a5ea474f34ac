"""Presence on `/ws`: entries for connections as they open and close, the `presence.view`
command, and `presence` messages to each project's audience.

The store (bus/presence.py) counts across the cluster and reports transitions; this part turns
each into one frame per project, encoded once, and queues it with `hub.send` for the project's
current audience (members and admins connected here, from the hub's access records: someone
who lost access is no longer in it). A connection that narrowed its subscription gets the
presence of the projects (and bug reports) it subscribed to.

Store calls for one connection run one after another (a view sent right after the welcome must
not overtake the entry it changes, nor a close the view), each in a task of its own: opening
and closing a connection never wait for Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from functools import partial
from itertools import chain
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bugstream.bus.presence import PresenceEntry, PresenceStore
from bugstream.domain.events import Event, EventType
from bugstream.domain.models import EntityId
from bugstream.domain.presence import PresenceChange
from bugstream.domain.protocol import ServerMessage
from bugstream.domain.validation import error_from_pydantic
from bugstream.gateway.connection import Connection
from bugstream.gateway.frames import json_frame
from bugstream.gateway.hub import Hub
from bugstream.gateway.messages import Inbound, ack_frame
from bugstream.services import bugs
from bugstream.services.context import Actor, ServiceContext
from bugstream.services.users import active_user

log = logging.getLogger("bugstream.gateway")


#: The `presence` message that says "read the snapshot again" (it names no user or project).
RESYNC = "resync"


class PresenceViewPayload(BaseModel):
    """`presence.view`: the bug report this connection shows now; null: none."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    bug_report_id: EntityId | None


class Presence:
    def __init__(self, *, store: PresenceStore, hub: Hub, ctx: ServiceContext) -> None:
        self.store = store
        self.hub = hub
        self.ctx = ctx
        # The last store call queued for each connection (the next one waits for it).
        self._last: dict[str, asyncio.Future[None]] = {}
        #: The connections here that receive presence messages (they opted in), by user. A
        #: change goes to these only, found from whichever side is smaller, the following
        #: users or the project's: going through a project's whole audience cost every connect
        #: O(connections) when nobody follows presence (a connect storm went quadratic).
        self._followers: dict[int, set[Connection]] = {}

    async def start(self) -> None:
        await self.store.start(self.deliver, self.resync)

    async def stop(self) -> None:
        if self._last:
            await asyncio.wait(list(self._last.values()), timeout=2)
        await self.store.stop()

    def opened(self, conn: Connection, *, follows: bool) -> None:
        if follows:
            self.follow(conn)
        access = self.hub.known_user(conn.user_id)
        projects = tuple(sorted(access.projects)) if access is not None else ()
        entry = PresenceEntry(conn.user_id, conn.info.username, projects)
        connection_id = conn.info.connection_id
        self._chain(connection_id, lambda: self.store.connect(connection_id, entry))

    def follow_access(self, events: Iterable[Event]) -> None:
        """After the hub applied them: a user connected here who joined or left a project has
        their entries name their projects now, so that their `left` goes only where they are
        still a member (a removed member's going offline is not told to that project)."""
        for event in events:
            if event.type is not EventType.MEMBERSHIP:
                continue
            access = self.hub.known_user(int(event.payload["user_id"]))
            if access is None:
                continue
            projects = tuple(sorted(access.projects))
            for conn in access.connections:
                connection_id = conn.info.connection_id
                self._chain(
                    connection_id,
                    partial(self.store.regroup, connection_id, projects),
                )

    def follow(self, conn: Connection) -> None:
        """`conn` receives presence messages from now on."""
        if not conn.closed:  # a closed one would never be taken out again
            self._followers.setdefault(conn.user_id, set()).add(conn)

    @property
    def followers(self) -> int:
        """Connections following presence (read at scrape time)."""
        return sum(len(conns) for conns in self._followers.values())

    def closed(self, conn: Connection) -> None:
        conns = self._followers.get(conn.user_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._followers[conn.user_id]
        connection_id = conn.info.connection_id
        self._chain(connection_id, lambda: self.store.disconnect(connection_id))

    async def view(self, conn: Connection, message: Inbound) -> None:
        """`presence.view`: `not_found` for a bug report the user may not see. An admin who
        is not a member of its project views it unseen (presence lists members only)."""
        try:
            payload = PresenceViewPayload.model_validate(message.payload)
        except ValidationError as exc:
            raise error_from_pydantic(exc.errors()) from None
        self.follow(conn)  # one who shows what they view sees who else does
        bug_id, project_id = payload.bug_report_id, None
        if bug_id is not None:
            user = await active_user(self.ctx, conn.user_id)
            bug = await bugs.get_bug(self.ctx, Actor(user_id=user.id, role=user.role), bug_id)
            access = self.hub.known_user(conn.user_id)
            if access is not None and bug.project_id in access.projects:
                project_id = bug.project_id
        shown = bug_id if project_id is not None else None
        connection_id = conn.info.connection_id
        await self._chain(connection_id, lambda: self.store.view(connection_id, shown, project_id))
        result = {"bug_report_id": bug_id, "project_id": project_id, "shown": shown is not None}
        self.hub.send(conn, ack_frame(message.request_id, message.type, result))

    def deliver(self, changes: list[PresenceChange]) -> None:
        """Queue each change for the followers in the audience of each of its projects (one
        frame each)."""
        if not self._followers:
            return
        for change in changes:
            user = {"id": change.user_id, "username": change.username}
            for project_id in change.project_ids:
                payload: dict[str, Any] = {"project_id": project_id, "user": user}
                if change.bug_report_id is not None:
                    payload["bug_report_id"] = change.bug_report_id
                frame = json_frame(
                    {
                        "type": ServerMessage.PRESENCE.value,
                        "event": change.event.value,
                        "payload": payload,
                    }
                )
                for conn in self._following(project_id):
                    if _wants(conn, project_id, change.bug_report_id):
                        self.hub.send(conn, frame)

    def resync(self) -> None:
        """Changes may have been missed (the cluster's presence channel was lost and is
        back): every follower is told to read `GET /api/v1/projects/{id}/presence` again."""
        if not self._followers:
            return
        frame = json_frame({"type": ServerMessage.PRESENCE.value, "event": RESYNC, "payload": {}})
        for conns in self._followers.values():
            for conn in conns:
                if not conn.closed:
                    self.hub.send(conn, frame)

    def _following(self, project_id: int) -> Iterator[Connection]:
        """The followers in the project's audience (its members and admins connected here),
        looked up from the smaller of the two sets of users."""
        followers = self._followers
        members, admins = self.hub.project_users(project_id), self.hub.admin_ids
        if len(followers) <= len(members) + len(admins):
            users: Iterable[int] = [u for u in followers if u in members or u in admins]
        else:
            audience = chain(members, (a for a in admins if a not in members))
            users = [u for u in audience if u in followers]
        for user_id in users:
            yield from followers[user_id]

    def _chain(
        self, connection_id: str, call: Callable[[], Awaitable[None]]
    ) -> asyncio.Future[None]:
        previous = self._last.get(connection_id)

        async def step() -> None:
            if previous is not None:
                await asyncio.wait([previous])  # whatever its outcome
            await call()

        task = asyncio.ensure_future(step())
        self._last[connection_id] = task
        task.add_done_callback(partial(self._finished, connection_id))
        return task

    def _finished(self, connection_id: str, task: asyncio.Future[None]) -> None:
        if self._last.get(connection_id) is task:
            del self._last[connection_id]
        if not task.cancelled() and task.exception() is not None:
            log.warning("presence update failed: %r", task.exception())


def _wants(conn: Connection, project_id: int, bug_report_id: int | None) -> bool:
    if conn.closed:
        return False
    sub = conn.subscription
    if not sub.narrowed:
        return True
    if sub.projects is not None and project_id in sub.projects:
        return True
    return bug_report_id is not None and bug_report_id in (sub.bug_reports or ())
