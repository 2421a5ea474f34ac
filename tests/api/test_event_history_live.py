"""`GET /api/v1/events` gives every role exactly what `/ws` delivers: the same events, the
same JSON, in the same order, while a scripted sequence of changes happens over two projects
(bugs, comments, assignments with their notifications, a user's own account, a membership).

A user whose access changed during the span is the one documented difference with the live
stream: the history is filtered with the access at request time, as a /ws replay is."""

from __future__ import annotations

from typing import Any

import httpx

from bugstream.domain.enums import BugStatus, Role
from bugstream.domain.models import (
    BugAssign,
    BugStatusChange,
    MembershipAdd,
    User,
    UserUpdate,
)
from bugstream.services import bugs, projects, users
from tests.support.factory import Factory
from tests.support.live import Client, LiveServer, live_server


async def history(http: httpx.AsyncClient, after: int, limit: int) -> list[dict[str, Any]]:
    """Every page after `after`, `limit` at a time, checking the cursor as it goes."""
    items: list[dict[str, Any]] = []
    while True:
        response = await http.get("/api/v1/events", params={"after": after, "limit": limit})
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        assert page["next_after"] >= after
        if page["items"]:
            assert page["next_after"] >= page["items"][-1]["event_id"]
        items += page["items"]
        if not page["has_more"]:
            assert page["next_after"] == max(after, page["latest_event_id"])
            return items
        after = page["next_after"]


async def replayed(live: LiveServer, user: User, after: int) -> list[dict[str, Any]]:
    """What a /ws client resuming after `after` receives now."""
    client = await live.connect(user, query=f"last_event_id={after}")
    events = await client.events(quiet=0.5)
    await client.close()
    return events


async def test_history_equals_what_ws_delivers_for_every_role(factory: Factory) -> None:
    admin = await factory.user(Role.ADMIN)
    manager = await factory.user(Role.MANAGER)
    developer = await factory.user(Role.DEVELOPER)
    reporter = await factory.user(Role.REPORTER)
    viewer = await factory.user(Role.VIEWER)
    loner = await factory.user(Role.DEVELOPER)  # in no project
    newcomer = await factory.user(Role.DEVELOPER)  # joins project b during the sequence
    a = await factory.project(manager, developer, reporter, viewer)
    b = await factory.project(developer)
    boss = factory.actor(admin)
    everyone = [admin, manager, developer, reporter, viewer, loner, newcomer]

    async with live_server(factory.ctx) as live:
        clients: dict[int, Client] = {u.id: await live.connect(u) for u in everyone}
        start = max(c.welcome["latest_event_id"] for c in clients.values())

        bug_a = await factory.bug(a, reporter, title="in a")
        bug_b = await factory.bug(b, developer, title="in b, before the newcomer")
        await bugs.assign_bug(factory.ctx, boss, bug_a.id, BugAssign(assignee_id=developer.id))
        await factory.comment(bug_a, manager, "seen by a's members; notifies the reporter")
        await bugs.change_bug_status(
            factory.ctx, boss, bug_a.id, BugStatusChange(status=BugStatus.IN_PROGRESS)
        )
        await users.update_user(factory.ctx, boss, loner.id, UserUpdate(email="l@example.org"))
        await projects.add_member(factory.ctx, boss, b.id, MembershipAdd(user_id=newcomer.id))
        await factory.comment(bug_b, developer, "in b, after the newcomer joined")
        await factory.bug(b, newcomer, title="the newcomer's own")

        live_events = {u.id: await clients[u.id].events(quiet=0.5) for u in everyone}
        assert {e["type"] for e in live_events[admin.id]} >= {
            "bug_report",
            "comment",
            "user",
            "membership",
        }
        assert any(e["type"] == "notification" for e in live_events[developer.id])
        assert [e["type"] for e in live_events[loner.id]] == ["user"]

        for user in everyone:
            async with live.http(user) as http:
                # limit 2: every list spans several pages.
                got = await history(http, start, 2)
            assert got == await replayed(live, user, start), user.role
            if user is not newcomer:
                assert got == live_events[user.id], user.role

        # The newcomer's history holds b's events from before they joined too: it is read
        # with their access now (as a /ws replay is), the live stream had them from joining.
        async with live.http(newcomer) as http:
            got = await history(http, start, 100)
        joined = next(e["event_id"] for e in got if e["type"] == "membership")
        assert [e for e in got if e["event_id"] >= joined] == live_events[newcomer.id]
        earlier = [e for e in got if e["event_id"] < joined]
        assert earlier and {e["payload"]["title"] for e in earlier} == {bug_b.title}
