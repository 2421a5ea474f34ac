"""Many clients, two projects, a mixed stream of writes: each client gets exactly its share.

20 users (4 admins) hold 56 connections (up to the 3-per-user limit). Some users belong to
both projects, some to one, one to none. About 60 writes over REST and WS commands, spread
over both projects (bugs, comments, status, assignment, project and account edits), then
every connection's stream is compared with what the visibility rules allow its user to see,
computed from the outbox: the same events, in commit order, no duplicates, nothing else.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from bugstream.domain.enums import BugStatus, Role
from bugstream.domain.models import Project, User
from tests.gateway.test_delivery import Message, Stream, Tap, Visibility, assert_commit_order
from tests.support.events import last_event_id
from tests.support.factory import Factory
from tests.support.live import LiveServer, live_server

#: name -> (role, projects it belongs to: 1, 2 or both)
PEOPLE: dict[str, tuple[Role, tuple[int, ...]]] = {
    "admin0": (Role.ADMIN, ()),
    "admin1": (Role.ADMIN, ()),
    "admin2": (Role.ADMIN, (1,)),
    "admin3": (Role.ADMIN, (2,)),
    "manager0": (Role.MANAGER, (1, 2)),
    "manager1": (Role.MANAGER, (1, 2)),
    "dev0": (Role.DEVELOPER, (1, 2)),
    "dev1": (Role.DEVELOPER, (1, 2)),
    "dev2": (Role.DEVELOPER, (1,)),
    "dev3": (Role.DEVELOPER, (1,)),
    "dev4": (Role.DEVELOPER, (1,)),
    "dev5": (Role.DEVELOPER, (2,)),
    "dev6": (Role.DEVELOPER, (2,)),
    "dev7": (Role.DEVELOPER, (2,)),
    "reporter0": (Role.REPORTER, (1, 2)),
    "reporter1": (Role.REPORTER, (1,)),
    "reporter2": (Role.REPORTER, (2,)),
    "viewer0": (Role.VIEWER, (1, 2)),
    "viewer1": (Role.VIEWER, (1,)),
    "loner": (Role.DEVELOPER, ()),  # in no project
}
WRITES = 60
STATUSES = [s.value for s in BugStatus]


@dataclass
class Bug:
    id: int
    project: int  # 1 or 2
    reporter: str
    assignee: str | None = None
    status: str = "open"
    comments: dict[int, str] = field(default_factory=dict)  # comment id -> author


@dataclass
class Scenario:
    """Chooses writes that the permission rules allow, and performs them."""

    live: LiveServer
    people: dict[str, User]
    projects: dict[int, Project]
    taps: dict[str, list[Tap]]
    http: dict[str, httpx.AsyncClient]
    rng: random.Random
    bugs: dict[int, Bug] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def members(self, project: int, *roles: Role) -> list[str]:
        return [
            name
            for name, (role, projects) in PEOPLE.items()
            if project in projects and (not roles or role in roles)
        ]

    def actor(self, project: int, *roles: Role) -> str:
        """A member with one of `roles`, or now and then an admin from outside."""
        if self.rng.random() < 0.15:
            return self.rng.choice(["admin0", "admin1"])
        return self.rng.choice(self.members(project, *roles))

    async def write(
        self, who: str, rest: tuple[str, str, Any], ws: tuple[str, dict[str, Any]] | None
    ) -> Any:
        """Over a WS command (half the time, when there is one) or REST; the entity."""
        if ws is not None and self.rng.random() < 0.5:
            self.counts["ws"] = self.counts.get("ws", 0) + 1
            return await self.rng.choice(self.taps[who]).ack(*ws)
        self.counts["rest"] = self.counts.get("rest", 0) + 1
        method, url, body = rest
        response = await self.http[who].request(method, "/api/v1" + url, json=body)
        assert response.status_code in (200, 201, 204), (who, method, url, response.text)
        return None if response.status_code == 204 else response.json()

    async def create_bug(self) -> None:
        project = self.rng.choice([1, 2])
        who = self.actor(project, Role.MANAGER, Role.DEVELOPER, Role.REPORTER)
        body = {"project_id": self.projects[project].id, "title": f"bug {next(self.seq)}"}
        bug = await self.write(who, ("POST", "/bugs", body), ("bug_report.create", body))
        self.bugs[bug["id"]] = Bug(bug["id"], project, who)

    def some_bug(self) -> Bug:
        return self.bugs[self.rng.choice(sorted(self.bugs))]

    async def update_bug(self, bug: Bug) -> None:
        who = self.actor(bug.project, Role.MANAGER, Role.DEVELOPER)
        body = {"title": f"renamed {next(self.seq)}"}
        await self.write(
            who,
            ("PATCH", f"/bugs/{bug.id}", body),
            ("bug_report.update", {"id": bug.id, **body}),
        )

    async def change_status(self, bug: Bug) -> None:
        who = self.actor(bug.project, Role.MANAGER, Role.DEVELOPER)
        status = self.rng.choice([s for s in STATUSES if s != bug.status])
        await self.write(
            who,
            ("POST", f"/bugs/{bug.id}/status", {"status": status}),
            ("bug_report.change_status", {"id": bug.id, "status": status}),
        )
        bug.status = status

    async def assign(self, bug: Bug) -> None:
        who = self.actor(bug.project, Role.MANAGER, Role.DEVELOPER)
        assignee = self.rng.choice([m for m in self.members(bug.project) if m != bug.assignee])
        body = {"assignee_id": self.people[assignee].id}
        await self.write(
            who,
            ("POST", f"/bugs/{bug.id}/assign", body),
            ("bug_report.assign", {"id": bug.id, **body}),
        )
        bug.assignee = assignee

    async def unassign(self, bug: Bug) -> None:
        who = self.actor(bug.project, Role.MANAGER, Role.DEVELOPER)
        await self.write(
            who,
            ("POST", f"/bugs/{bug.id}/unassign", None),
            ("bug_report.unassign", {"id": bug.id}),
        )
        bug.assignee = None

    async def comment(self, bug: Bug) -> None:
        who = self.actor(bug.project, Role.MANAGER, Role.DEVELOPER, Role.REPORTER)
        content = f"comment {next(self.seq)}"
        comment = await self.write(
            who,
            ("POST", f"/bugs/{bug.id}/comments", {"content": content}),
            ("comment.create", {"bug_report_id": bug.id, "content": content}),
        )
        bug.comments[comment["id"]] = who

    async def edit_comment(self, bug: Bug) -> None:
        comment_id, author = self.rng.choice(sorted(bug.comments.items()))
        content = f"edited {next(self.seq)}"
        await self.write(
            author,
            ("PATCH", f"/comments/{comment_id}", {"content": content}),
            ("comment.update", {"id": comment_id, "content": content}),
        )

    async def delete_comment(self, bug: Bug) -> None:
        comment_id, author = self.rng.choice(sorted(bug.comments.items()))
        await self.write(
            author,
            ("DELETE", f"/comments/{comment_id}", None),
            ("comment.delete", {"id": comment_id}),
        )
        del bug.comments[comment_id]

    async def delete_bug(self, bug: Bug) -> None:
        who = self.actor(bug.project, Role.MANAGER)
        await self.write(
            who, ("DELETE", f"/bugs/{bug.id}", None), ("bug_report.delete", {"id": bug.id})
        )
        del self.bugs[bug.id]

    async def edit_project(self) -> None:
        project = self.rng.choice([1, 2])
        who = self.actor(project, Role.MANAGER)
        body = {"description": f"revision {next(self.seq)}"}
        await self.write(who, ("PATCH", f"/projects/{self.projects[project].id}", body), None)

    async def edit_account(self, who: str | None = None) -> None:
        if who is None:
            who = self.rng.choice([n for n, (r, _) in PEOPLE.items() if r is not Role.ADMIN])
        body = {"email": f"{who}.{next(self.seq)}@example.com"}
        await self.write(who, ("PATCH", f"/users/{self.people[who].id}", body), None)

    async def step(self) -> None:
        if len(self.bugs) < 4:
            await self.create_bug()
            return
        bug = self.some_bug()
        choices = [
            (self.create_bug, 3),
            (lambda: self.update_bug(bug), 2),
            (lambda: self.change_status(bug), 3),
            (lambda: self.assign(bug), 3),
            (lambda: self.comment(bug), 4),
            (self.edit_project, 1),
            (self.edit_account, 1),
        ]
        if bug.assignee is not None:
            choices.append((lambda: self.unassign(bug), 1))
        if bug.comments:
            choices += [(lambda: self.edit_comment(bug), 2), (lambda: self.delete_comment(bug), 1)]
        if len(self.bugs) > 5:
            choices.append((lambda: self.delete_bug(bug), 2))
        action = self.rng.choices([c for c, _ in choices], [w for _, w in choices])[0]
        await action()


async def nothing_more(tap: Tap) -> list[Message]:
    """Whatever else arrives within a short quiet period (there must be nothing)."""
    extra: list[Message] = []
    while True:
        try:
            message = await tap.read(timeout=0.3)
        except TimeoutError:
            return extra
        if message is None:
            return [{"closed": tap.close}]
        extra.append(message)


async def test_fifty_clients_each_receive_exactly_what_they_may_see(factory: Factory) -> None:
    ctx = factory.ctx
    people = {name: await factory.user(role) for name, (role, _) in PEOPLE.items()}
    projects = {
        n: await factory.project(
            *(people[name] for name, (_, member_of) in PEOPLE.items() if n in member_of)
        )
        for n in (1, 2)
    }
    async with live_server(ctx) as live:
        taps: dict[str, list[Tap]] = {}
        for index, (name, user) in enumerate(people.items()):
            count = 2 if index % 5 == 4 else 3
            taps[name] = [Tap(f"{name}#{n}", user, await live.connect(user)) for n in range(count)]
        every_tap = [tap for group in taps.values() for tap in group]
        assert len(every_tap) >= 50
        assert live.gateway.hub.connection_count == len(every_tap)
        start = await last_event_id(ctx)
        stream = Stream(ctx, await Visibility.load(ctx), start)

        clients = [live.http(user) for user in people.values()]
        http = dict(zip(people, clients, strict=True))
        try:
            scenario = Scenario(live, people, projects, taps, http, random.Random(20240605))
            for _ in range(WRITES - 1):
                await scenario.step()
            await scenario.edit_account("loner")  # in no project, yet told of their own account
        finally:
            for client in clients:
                await client.aclose()

        new = await stream.sync()
        assert len(new) >= WRITES
        # Both channels and both projects were exercised.
        assert scenario.counts["ws"] >= 15 and scenario.counts["rest"] >= 15, scenario.counts
        touched = {e.payload.get("project_id") for e in new if e.type.value == "bug_report"}
        assert {projects[1].id, projects[2].id} <= touched
        assert {(e.type.value, e.event.value) for e in new} >= {
            ("bug_report", name)
            for name in ("created", "updated", "deleted", "status_changed", "assigned")
        } | {("comment", "created"), ("project", "updated"), ("user", "updated")} | {
            ("notification", name) for name in ("bug_assigned", "comment_added", "status_changed")
        }

        expected = {tap.name: stream.expected(tap.user) for tap in every_tap}

        async def collect(tap: Tap) -> None:
            if expected[tap.name]:
                await tap.pump_until(expected[tap.name][-1]["event_id"])

        await asyncio.gather(*(collect(tap) for tap in every_tap))
        extras = await asyncio.gather(*(nothing_more(tap) for tap in every_tap))

    for tap, extra in zip(every_tap, extras, strict=True):
        assert tap.events == expected[tap.name], tap.name
        assert_commit_order(tap)
        assert extra == [], tap.name

    # The audiences really differ: admins see every project event, others their share.
    project_events = [e for e in new if e.type.value in ("bug_report", "comment", "project")]
    for tap in taps["admin0"]:
        assert len(
            [m for m in tap.events if m["type"] in ("bug_report", "comment", "project")]
        ) == (len(project_events))
    in_p1_only = {m["payload"].get("project_id") for m in taps["dev2"][0].events}
    assert projects[2].id not in in_p1_only
    for tap in taps["loner"]:  # only their own account's events, and not none
        assert {(m["type"], m["payload"]["id"]) for m in tap.events} == {
            ("user", people["loner"].id)
        }
