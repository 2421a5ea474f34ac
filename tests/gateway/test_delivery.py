"""Every event of the spec reaches exactly the clients allowed to see it, whatever the trigger.

For each (type, event) pair of the catalog, the trigger is performed over REST and, where the
protocol has a command for it, over the socket. Then every connected client's stream is
compared, message for message, with what the visibility rules allow it to see:

- bug_report, comment, project and membership events: the project's members and admins;
- notification events: their target user only;
- user events: admins and the user themselves.

A "fence" (a bug filed in a project every test user belongs to) marks the end of each step:
per client, order is commit order, so once a client has the fence it has everything before it.
The helpers here (`Tap`, `Visibility`) are shared with the other delivery tests in this folder.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select

from bugstream.domain.enums import Role, UserStatus
from bugstream.domain.events import (
    REQUIRED_PAYLOAD_FIELDS,
    SPEC_EVENTS,
    Event,
    EventName,
    EventType,
)
from bugstream.domain.models import BugCreate, Project, User
from bugstream.services import bugs
from bugstream.services.context import Actor, ServiceContext
from bugstream.store.tables import memberships, users
from tests.support.events import events_since, kinds, last_event_id
from tests.support.factory import PASSWORD, Factory
from tests.support.live import TIMEOUT, Client, LiveServer, live_server

Message = dict[str, Any]

_request_ids = itertools.count(1)


# ---- shared helpers -------------------------------------------------------------------------


class Tap:
    """One live connection and everything it received, in arrival order.

    Events (messages with an `event_id`) go to `events`, everything else (acks, errors) to
    `replies`; `close` is set once the server has closed the socket.
    """

    def __init__(self, name: str, user: User, client: Client) -> None:
        self.name = name
        self.user = user
        self.client = client
        self.events: list[Message] = []
        self.replies: list[Message] = []
        self.close: tuple[int | None, str] | None = None

    def __repr__(self) -> str:
        return f"Tap({self.name})"

    async def read(self, timeout: float = TIMEOUT) -> Message | None:
        """The next message (filed as event or reply), or None once the socket is closed."""
        if self.close is not None:
            return None
        try:
            message = await self.client.next(timeout)
        except websockets.ConnectionClosed:
            ws = self.client.ws
            self.close = (ws.close_code, ws.close_reason or "")
            return None
        if "event_id" in message:
            self.events.append(message)
        else:
            self.replies.append(message)
        return message

    async def pump_until(self, event_id: int) -> None:
        """Read until an event with an id of at least `event_id` arrived (or the socket closed)."""
        while not (self.events and self.events[-1]["event_id"] >= event_id):
            try:
                if await self.read() is None:
                    return
            except TimeoutError:
                got = [m["event_id"] for m in self.events[-5:]]
                raise AssertionError(
                    f"{self.name} never received event {event_id} (last ids: {got})"
                ) from None

    async def until_closed(self) -> tuple[int | None, str]:
        """Read everything until the server closes the socket; the close code and reason."""
        while await self.read() is not None:
            pass
        assert self.close is not None
        return self.close

    async def command(self, kind: str, payload: dict[str, Any]) -> Message:
        """Send a command; the ack or error answering it (events meanwhile are kept)."""
        request_id = f"{kind}-{next(_request_ids)}"
        await self.client.send({"type": kind, "request_id": request_id, "payload": payload})
        while True:
            message = await self.read()
            assert message is not None, f"{self.name} was closed before the answer: {self.close}"
            if "event_id" not in message and message["payload"].get("request_id") == request_id:
                return message

    async def ack(self, kind: str, payload: dict[str, Any]) -> Any:
        """Send a command that must succeed; the `result` of its ack."""
        reply = await self.command(kind, payload)
        assert reply["type"] == "ack", reply
        assert reply["payload"]["command"] == kind
        return reply["payload"]["result"]

    def ids(self) -> list[int]:
        return [m["event_id"] for m in self.events]


class Visibility:
    """The spec's visibility rules, replayed over committed events in order.

    `audience(event)` is the set of users who may see the event at its place in the stream,
    and applies the access change the event makes: a member added sees the event that adds
    them, a member removed sees the event that removes them and nothing of the project after
    it, a deleted project's members see its deletion, a user's role counts from the event that
    changes it, and a deleted or deactivated user sees that event and nothing after it.
    """

    def __init__(self, members: dict[int, set[int]], roles: dict[int, Role]) -> None:
        self.members = members
        self.roles = roles
        self.gone: set[int] = set()

    @classmethod
    async def load(cls, ctx: ServiceContext) -> Visibility:
        """The state as the database holds it now."""
        members: dict[int, set[int]] = {}
        roles: dict[int, Role] = {}
        async with ctx.db.read() as repos:
            for project_id, user_id in await repos.conn.execute(
                select(memberships.c.project_id, memberships.c.user_id)
            ):
                members.setdefault(project_id, set()).add(user_id)
            for user_id, role, status in await repos.conn.execute(
                select(users.c.id, users.c.role, users.c.status)
            ):
                if status == UserStatus.ACTIVE.value:
                    roles[user_id] = Role(role)
        return cls(members, roles)

    def _admins(self) -> set[int]:
        return {user_id for user_id, role in self.roles.items() if role is Role.ADMIN}

    def audience(self, event: Event) -> frozenset[int]:
        p = event.payload
        who: set[int]
        match event.type:
            case EventType.MEMBERSHIP:
                project = self.members.setdefault(p["project_id"], set())
                if event.event is EventName.ADDED:
                    project.add(p["user_id"])
                    who = self._admins() | project
                else:
                    who = self._admins() | project | {p["user_id"]}
                    project.discard(p["user_id"])
            case EventType.BUG_REPORT | EventType.COMMENT:
                who = self._admins() | self.members.get(p["project_id"], set())
            case EventType.PROJECT:
                who = self._admins() | self.members.get(p["id"], set())
                if event.event is EventName.DELETED:
                    self.members.pop(p["id"], None)
            case EventType.NOTIFICATION:
                who = {p["user_id"]}
            case EventType.USER:
                who = self._admins() | {p["id"]}
                if event.event is EventName.DELETED or p["status"] != UserStatus.ACTIVE.value:
                    self.roles.pop(p["id"], None)
                    for project in self.members.values():
                        project.discard(p["id"])
                    result = frozenset(who - self.gone)
                    self.gone.add(p["id"])
                    return result
                self.roles[p["id"]] = Role(p["role"])
        return frozenset(who - self.gone)


class Stream:
    """Committed events since the clients connected, and the audience of each."""

    def __init__(self, ctx: ServiceContext, visibility: Visibility, start: int) -> None:
        self.ctx = ctx
        self.visibility = visibility
        self.position = start
        self.history: list[Event] = []
        self.audiences: dict[int, frozenset[int]] = {}

    async def sync(self) -> list[Event]:
        """Take in every event committed since the last sync; the new ones."""
        new = await events_since(self.ctx, self.position)
        for event in new:
            self.audiences[event.event_id] = self.visibility.audience(event)
            self.history.append(event)
        if new:
            self.position = new[-1].event_id
        return new

    def expected(
        self, user: User, wants: Callable[[Event], bool] = lambda _e: True
    ) -> list[Message]:
        """Every envelope `user` may see (and wants), in commit order."""
        return [
            e.envelope() for e in self.history if user.id in self.audiences[e.event_id] and wants(e)
        ]


async def pump_all(taps: Iterable[Tap], event_id: int) -> None:
    await asyncio.gather(*(tap.pump_until(event_id) for tap in taps))


def assert_commit_order(tap: Tap) -> None:
    ids = tap.ids()
    assert ids == sorted(set(ids)), f"{tap.name}: out of order or duplicated: {ids}"


# ---- the world every delivery test runs in ---------------------------------------------------

ROLES: dict[str, Role] = {
    "admin": Role.ADMIN,
    "manager": Role.MANAGER,
    "dev": Role.DEVELOPER,
    "reporter": Role.REPORTER,
    "outsider": Role.DEVELOPER,  # a member of another project only
    "newbie": Role.VIEWER,  # a member of no real project (until a test adds them)
    "subject": Role.DEVELOPER,  # suspended by a test
    "doomed": Role.REPORTER,  # deleted by a test
}


@dataclass
class World:
    live: LiveServer
    factory: Factory
    people: dict[str, User]
    project: Project
    fence_project: Project
    fence_actor: Actor
    taps: dict[str, Tap]
    http: dict[str, httpx.AsyncClient]
    stream: Stream
    mark: int | None = None
    closed: set[str] = field(default_factory=set)  # taps a step closed on purpose

    @property
    def ctx(self) -> ServiceContext:
        return self.factory.ctx

    def user(self, name: str) -> User:
        return self.people[name]

    async def rest(self, who: str, method: str, url: str, body: Any = None) -> Any:
        response = await self.http[who].request(method, "/api/v1" + url, json=body)
        assert response.status_code in (200, 201, 204), (method, url, response.text)
        return None if response.status_code == 204 else response.json()

    async def act(
        self,
        via: str,
        who: str,
        rest: tuple[str, str, Any],
        ws: tuple[str, dict[str, Any]] | None = None,
    ) -> Any:
        """Perform the trigger as `who`, over REST or as a WS command: the resulting entity
        (None for a REST delete). Events before this call are setup, not the trigger's."""
        self.mark = await last_event_id(self.ctx)
        if via == "rest":
            return await self.rest(who, *rest)
        assert ws is not None, "no WS command for this trigger"
        return await self.taps[who].ack(*ws)

    async def latest_notification(self, who: str) -> Message:
        page = await self.rest(who, "GET", "/notifications?limit=200")
        latest: Message = page["items"][-1]
        return latest

    async def fence(self) -> int:
        """Commit an event every connected user may see; its id."""
        data = BugCreate(project_id=self.fence_project.id, title="fence")
        result = await bugs.create_bug(self.ctx, self.fence_actor, data)
        return result.events[-1].event_id


@asynccontextmanager
async def open_world(factory: Factory) -> AsyncIterator[World]:
    people = {name: await factory.user(role) for name, role in ROLES.items()}
    project = await factory.project(people["manager"], people["dev"], people["reporter"])
    await factory.project(people["outsider"])
    everyone = [u for name, u in people.items() if name != "admin"]
    fence_project = await factory.project(*everyone)
    async with live_server(factory.ctx) as live, AsyncExitStack() as stack:
        taps = {name: Tap(name, user, await live.connect(user)) for name, user in people.items()}
        http = {
            name: await stack.enter_async_context(live.http(user)) for name, user in people.items()
        }
        start = await last_event_id(factory.ctx)
        assert {t.client.welcome["latest_event_id"] for t in taps.values()} == {start}
        stream = Stream(factory.ctx, await Visibility.load(factory.ctx), start)
        yield World(
            live=live,
            factory=factory,
            people=people,
            project=project,
            fence_project=fence_project,
            fence_actor=await factory.admin(),
            taps=taps,
            http=http,
            stream=stream,
        )


# ---- the triggers ------------------------------------------------------------------------------

Trigger = Callable[[World, str], Awaitable[Message]]


async def bug_created(w: World, via: str) -> Message:
    body = {
        "project_id": w.project.id,
        "title": "Login fails",
        "description": "500 on submit",
        "priority": "high",
    }
    bug = await w.act(via, "reporter", ("POST", "/bugs", body), ("bug_report.create", body))
    assert {k: bug[k] for k in body} == body
    assert (bug["status"], bug["assignee_id"]) == ("open", None)
    return dict(bug)


async def bug_updated(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"))
    change = {"title": "Login fails on Safari", "priority": "critical"}
    result = await w.act(
        via,
        "dev",
        ("PATCH", f"/bugs/{bug.id}", change),
        ("bug_report.update", {"id": bug.id, **change}),
    )
    assert (result["title"], result["priority"]) == ("Login fails on Safari", "critical")
    return dict(result)


async def bug_deleted(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"))
    result = await w.act(
        via, "manager", ("DELETE", f"/bugs/{bug.id}", None), ("bug_report.delete", {"id": bug.id})
    )
    if via == "ws":
        assert result == bug.to_payload()
    return bug.to_payload()


async def bug_status_changed(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"))
    body = {"status": "in_progress"}
    result = await w.act(
        via,
        "dev",
        ("POST", f"/bugs/{bug.id}/status", body),
        ("bug_report.change_status", {"id": bug.id, **body}),
    )
    assert result["status"] == "in_progress"
    return {**result, "previous_status": "open"}


async def bug_assigned(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"))
    body = {"assignee_id": w.user("dev").id}
    result = await w.act(
        via,
        "manager",
        ("POST", f"/bugs/{bug.id}/assign", body),
        ("bug_report.assign", {"id": bug.id, **body}),
    )
    assert result["assignee_id"] == w.user("dev").id
    return {**result, "previous_assignee_id": None}


async def bug_unassigned(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"), assignee=w.user("dev"))
    result = await w.act(
        via,
        "manager",
        ("POST", f"/bugs/{bug.id}/unassign", None),
        ("bug_report.unassign", {"id": bug.id}),
    )
    assert result["assignee_id"] is None
    return {**result, "previous_assignee_id": w.user("dev").id}


async def comment_created(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"))
    content = "Reproduced on 2.3.1"
    result = await w.act(
        via,
        "dev",
        ("POST", f"/bugs/{bug.id}/comments", {"content": content}),
        ("comment.create", {"bug_report_id": bug.id, "content": content}),
    )
    assert (result["bug_report_id"], result["user_id"]) == (bug.id, w.user("dev").id)
    assert result["content"] == content
    return {**result, "project_id": w.project.id}


async def comment_updated(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"))
    comment = await w.factory.comment(bug, w.user("dev"))
    content = "Reproduced on 2.3.2 as well"
    result = await w.act(
        via,
        "dev",
        ("PATCH", f"/comments/{comment.id}", {"content": content}),
        ("comment.update", {"id": comment.id, "content": content}),
    )
    assert (result["id"], result["content"]) == (comment.id, content)
    return {**result, "project_id": w.project.id}


async def comment_deleted(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"))
    comment = await w.factory.comment(bug, w.user("dev"))
    result = await w.act(
        via,
        "dev",
        ("DELETE", f"/comments/{comment.id}", None),
        ("comment.delete", {"id": comment.id}),
    )
    if via == "ws":
        assert result == comment.to_payload()
    return {**comment.to_payload(), "project_id": w.project.id}


async def project_created(w: World, via: str) -> Message:
    body = {"name": "Apollo", "description": "the moon shot"}
    result = await w.act(via, "manager", ("POST", "/projects", body))
    assert {k: result[k] for k in body} == body
    return dict(result)


async def project_updated(w: World, via: str) -> Message:
    body = {"description": "now with a roadmap"}
    result = await w.act(via, "manager", ("PATCH", f"/projects/{w.project.id}", body))
    assert (result["id"], result["description"]) == (w.project.id, "now with a roadmap")
    return dict(result)


async def project_deleted(w: World, via: str) -> Message:
    doomed = await w.factory.project(w.user("manager"), w.user("dev"))
    await w.act(via, "admin", ("DELETE", f"/projects/{doomed.id}", None))
    return doomed.to_payload()


async def user_created(w: World, via: str) -> Message:
    body = {
        "username": "newcomer",
        "email": "newcomer@example.com",
        "password": PASSWORD,
        "role": "developer",
    }
    result = await w.act(via, "admin", ("POST", "/users", body))
    assert (result["username"], result["role"], result["status"]) == (
        "newcomer",
        "developer",
        "active",
    )
    return dict(result)


async def user_updated(w: World, via: str) -> Message:
    dev = w.user("dev")
    body = {"email": "dev.renamed@example.com"}
    result = await w.act(via, "dev", ("PATCH", f"/users/{dev.id}", body))
    assert (result["id"], result["email"]) == (dev.id, "dev.renamed@example.com")
    return dict(result)


async def user_status_changed(w: World, via: str) -> Message:
    subject = w.user("subject")
    body = {"status": "suspended"}
    result = await w.act(via, "admin", ("POST", f"/users/{subject.id}/status", body))
    assert (result["id"], result["status"]) == (subject.id, "suspended")
    return {**result, "previous_status": "active"}


async def user_deleted(w: World, via: str) -> Message:
    doomed = w.user("doomed")
    before = await w.rest("admin", "GET", f"/users/{doomed.id}")
    await w.act(via, "admin", ("DELETE", f"/users/{doomed.id}", None))
    return dict(before)


async def _notification_for(w: World, who: str, kind: str, bug_id: int) -> Message:
    """The newest notification in `who`'s own list: it is what the event must carry."""
    notification = await w.latest_notification(who)
    assert notification["type"] == kind
    assert notification["user_id"] == w.user(who).id
    assert notification["read"] is False
    assert f"#{bug_id}" in notification["message"]
    return notification


async def notification_bug_assigned(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"))
    body = {"assignee_id": w.user("dev").id}
    await w.act(
        via,
        "manager",
        ("POST", f"/bugs/{bug.id}/assign", body),
        ("bug_report.assign", {"id": bug.id, **body}),
    )
    return await _notification_for(w, "dev", "bug_assigned", bug.id)


async def notification_comment_added(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"))
    await w.act(
        via,
        "dev",
        ("POST", f"/bugs/{bug.id}/comments", {"content": "looking"}),
        ("comment.create", {"bug_report_id": bug.id, "content": "looking"}),
    )
    return await _notification_for(w, "reporter", "comment_added", bug.id)


async def notification_status_changed(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"))
    await w.act(
        via,
        "manager",
        ("POST", f"/bugs/{bug.id}/status", {"status": "resolved"}),
        ("bug_report.change_status", {"id": bug.id, "status": "resolved"}),
    )
    return await _notification_for(w, "reporter", "status_changed", bug.id)


async def notification_reminder_sent(w: World, via: str) -> Message:
    bug = await w.factory.bug(w.project, w.user("reporter"), assignee=w.user("dev"))
    result = await w.act(via, "manager", ("POST", f"/bugs/{bug.id}/remind", None))
    assert result == await _notification_for(w, "dev", "reminder_sent", bug.id)
    return dict(result)


async def membership_added(w: World, via: str) -> Message:
    body = {"user_id": w.user("newbie").id}
    result = await w.act(via, "manager", ("POST", f"/projects/{w.project.id}/members", body))
    assert (result["project_id"], result["user_id"]) == (w.project.id, w.user("newbie").id)
    return dict(result)


async def membership_removed(w: World, via: str) -> Message:
    reporter = w.user("reporter")
    added = [
        e
        for e in await events_since(w.ctx, 0)
        if (e.type, e.event) == (EventType.MEMBERSHIP, EventName.ADDED)
        and (e.payload["project_id"], e.payload["user_id"]) == (w.project.id, reporter.id)
    ]
    assert len(added) == 1
    await w.act(via, "manager", ("DELETE", f"/projects/{w.project.id}/members/{reporter.id}", None))
    # The event carries the membership that ended, as `membership.added` announced it.
    return dict(added[0].payload)


@dataclass(frozen=True)
class Case:
    type: str
    event: str
    run: Trigger
    audience: tuple[str, ...]  # the connected users who must receive the event, no others
    ws: bool = False  # the trigger also exists as a WS command
    closes: tuple[str, ...] = ()  # connections the event closes (4003)


MEMBERS = ("admin", "manager", "dev", "reporter")

#: In table order within a type (membership.removed runs after membership.added).
CASES: tuple[Case, ...] = (
    Case("bug_report", "created", bug_created, MEMBERS, ws=True),
    Case("bug_report", "updated", bug_updated, MEMBERS, ws=True),
    Case("bug_report", "deleted", bug_deleted, MEMBERS, ws=True),
    Case("bug_report", "status_changed", bug_status_changed, MEMBERS, ws=True),
    Case("bug_report", "assigned", bug_assigned, MEMBERS, ws=True),
    Case("bug_report", "unassigned", bug_unassigned, MEMBERS, ws=True),
    Case("comment", "created", comment_created, MEMBERS, ws=True),
    Case("comment", "updated", comment_updated, MEMBERS, ws=True),
    Case("comment", "deleted", comment_deleted, MEMBERS, ws=True),
    Case("project", "created", project_created, ("admin", "manager")),
    Case("project", "updated", project_updated, MEMBERS),
    Case("project", "deleted", project_deleted, ("admin", "manager", "dev")),
    Case("user", "created", user_created, ("admin",)),
    Case("user", "updated", user_updated, ("admin", "dev")),
    Case("user", "status_changed", user_status_changed, ("admin", "subject"), closes=("subject",)),
    Case("user", "deleted", user_deleted, ("admin", "doomed"), closes=("doomed",)),
    Case("notification", "bug_assigned", notification_bug_assigned, ("dev",), ws=True),
    Case("notification", "comment_added", notification_comment_added, ("reporter",), ws=True),
    Case("notification", "status_changed", notification_status_changed, ("reporter",), ws=True),
    Case("notification", "reminder_sent", notification_reminder_sent, ("dev",)),
    Case("membership", "added", membership_added, (*MEMBERS, "newbie")),
    Case("membership", "removed", membership_removed, (*MEMBERS, "newbie")),
)

GROUPS = [
    pytest.param(kind, via, id=f"{kind}-{via}")
    for kind in dict.fromkeys(c.type for c in CASES)
    for via in ("rest", "ws")
    if via == "rest" or any(c.ws for c in CASES if c.type == kind)
]


def test_the_table_covers_every_event_and_every_command_trigger() -> None:
    spec = {(t.value, e.value) for t, e in SPEC_EVENTS}
    assert len(spec) == 20
    assert {(c.type, c.event) for c in CASES} == spec | {
        ("membership", "added"),
        ("membership", "removed"),
    }
    over_ws = {(c.type, c.event) for c in CASES if c.ws}
    assert over_ws == {pair for pair in spec if pair[0] in ("bug_report", "comment")} | {
        ("notification", "bug_assigned"),
        ("notification", "comment_added"),
        ("notification", "status_changed"),
    }


async def check_case(w: World, case: Case, via: str) -> None:
    label = f"{case.type}.{case.event} via {via}"
    w.mark = None
    expected_payload = await case.run(w, via)
    mark = w.mark
    assert mark is not None
    fence = await w.fence()
    await w.stream.sync()
    step = [e for e in w.stream.history if mark < e.event_id < fence]
    targets = [e for e in step if (e.type.value, e.event.value) == (case.type, case.event)]
    assert len(targets) == 1, f"{label}: committed {kinds(step)}"
    target = targets[0]
    missing = [f for f in REQUIRED_PAYLOAD_FIELDS[target.type] if f not in target.payload]
    assert not missing, f"{label}: payload lacks {missing}"
    assert target.payload == expected_payload, label

    await pump_all(w.taps.values(), fence)
    receivers = {n for n, tap in w.taps.items() if target.event_id in tap.ids()}
    assert receivers == set(case.audience), label
    for name, tap in w.taps.items():
        # Every message is an envelope of exactly these keys (equality below checks all).
        assert all(set(m) == {"type", "event", "payload", "event_id"} for m in tap.events)
        assert tap.events == w.stream.expected(tap.user), f"{label}: stream of {name}"
        assert_commit_order(tap)
        if name in case.closes:
            # The event reached them; then the error, then close code 4003.
            assert tap.events[-1]["event_id"] == target.event_id, f"{label}: {name}"
            assert tap.close is not None and tap.close[0] == 4003, f"{label}: {name} {tap.close}"
            assert tap.replies[-1]["type"] == "error"
            assert tap.replies[-1]["payload"]["code"] == "forbidden"
            w.closed.add(name)
        elif name not in w.closed:
            assert tap.close is None, f"{label}: {name} was closed: {tap.close}"
            assert tap.events[-1]["event_id"] == fence
    # The outsider (no member, no admin, no subject) saw no part of the step.
    assert not [m for m in w.taps["outsider"].events if mark < m["event_id"] < fence], label


@pytest.mark.parametrize(("kind", "via"), GROUPS)
async def test_each_event_reaches_exactly_its_audience(
    factory: Factory, kind: str, via: str
) -> None:
    cases = [c for c in CASES if c.type == kind and (via == "rest" or c.ws)]
    assert cases
    async with open_world(factory) as w:
        for case in cases:
            await check_case(w, case, via)
