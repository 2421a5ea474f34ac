"""Presence on one instance (the in-process store): who is online in a project and who views
which bug report, as `presence` messages to the project's audience and as
`GET /api/v1/projects/{id}/presence`.

- A member sees another member's first connection as `joined` and their last one closing as
  `left` (not each connection); a user who is not a member sees nothing of it.
- `presence.view` is `viewing` for the audience, a new view replaces the old one
  (`stopped_viewing` then `viewing`), null stops; a bug report the user may not see is
  `not_found`; closing the viewing connection ends the view.
- GET lists exactly that; a non-member gets 404; a removed member drops out of the list and
  out of the audience at once.
- `presence.view` counts against the message rate limit like every message; an SSE stream
  counts as a connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bugstream.domain.enums import Role
from bugstream.domain.models import MembershipAdd, Project, User
from bugstream.services import projects
from tests.gateway.test_sse import open_stream
from tests.support.factory import Factory
from tests.support.live import Client, LiveServer, live_server
from tests.support.presence import presence_messages

#: Presence messages are opt-in: these connections ask for them.
FOLLOW = "presence=true"


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with live_server() as live:
        yield live


async def presence(client: Client, quiet: float = 0.4) -> list[tuple[str, int, int, Any]]:
    """`(event, project, user, bug report)` of every presence message until `quiet`."""
    return [
        (m["event"], p["project_id"], p["user"]["id"], p.get("bug_report_id"))
        for m in await presence_messages(client, quiet)
        if (p := m["payload"])
    ]


async def snapshot(server: LiveServer, user: User, project: Project) -> dict[str, Any]:
    async with server.http(user) as http:
        response = await http.get(f"/api/v1/projects/{project.id}/presence")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def cast(server: LiveServer) -> tuple[Factory, tuple[User, User, User], Project]:
    """alice and bob, members of a project; carol, a developer who is not."""
    factory = Factory(server.ctx)
    people = tuple([await factory.user(name=name) for name in ("alice", "bob", "carol")])
    alice, bob, carol = people
    return factory, (alice, bob, carol), await factory.project(alice, bob)


def online(body: dict[str, Any]) -> dict[str, int]:
    return {u["username"]: u["connections"] for u in body["online"]}


def viewing(body: dict[str, Any]) -> dict[int, list[str]]:
    return {v["bug_report_id"]: [u["username"] for u in v["users"]] for v in body["viewing"]}


async def test_members_see_a_user_join_once_and_leave_with_the_last_connection(
    server: LiveServer,
) -> None:
    factory, (alice, bob, carol), project = await cast(server)
    await factory.project(carol)
    watcher = await server.connect(alice, query=FOLLOW)
    outsider = await server.connect(carol, query=FOLLOW)
    assert await presence(watcher) == [("joined", project.id, alice.id, None)]

    first = await server.connect(bob, query=FOLLOW)
    second = await server.connect(bob, query=FOLLOW)
    assert await presence(watcher) == [("joined", project.id, bob.id, None)]
    assert online(await snapshot(server, alice, project)) == {"alice": 1, "bob": 2}

    await first.close()
    assert await presence(watcher) == []  # bob is still online
    assert online(await snapshot(server, alice, project)) == {"alice": 1, "bob": 1}
    await second.close()
    assert await presence(watcher) == [("left", project.id, bob.id, None)]
    assert online(await snapshot(server, alice, project)) == {"alice": 1}
    assert [m for m in await presence(outsider) if m[2] != carol.id] == []


async def test_viewing_a_bug_report_is_shown_to_the_project_and_ends_with_the_connection(
    server: LiveServer,
) -> None:
    factory, (alice, bob, carol), project = await cast(server)
    bug, other = await factory.bug(project, alice), await factory.bug(project, alice)
    watcher = await server.connect(alice, query=FOLLOW)
    viewer = await server.connect(bob, query=FOLLOW)
    outsider = await server.connect(carol, query=FOLLOW)
    await presence(watcher)

    ack = await viewer.command("presence.view", {"bug_report_id": bug.id})
    assert ack["type"] == "ack", ack
    assert ack["payload"]["result"] == {
        "bug_report_id": bug.id,
        "project_id": project.id,
        "shown": True,
    }
    assert await presence(watcher) == [("viewing", project.id, bob.id, bug.id)]
    assert viewing(await snapshot(server, alice, project)) == {bug.id: ["bob"]}

    # One view per connection: a new one replaces it; the same one again changes nothing.
    await viewer.command("presence.view", {"bug_report_id": other.id}, request_id="r2")
    await viewer.command("presence.view", {"bug_report_id": other.id}, request_id="r3")
    assert await presence(watcher) == [
        ("stopped_viewing", project.id, bob.id, bug.id),
        ("viewing", project.id, bob.id, other.id),
    ]
    await viewer.command("presence.view", {"bug_report_id": None}, request_id="r4")
    assert await presence(watcher) == [("stopped_viewing", project.id, bob.id, other.id)]
    assert viewing(await snapshot(server, alice, project)) == {}

    await viewer.command("presence.view", {"bug_report_id": bug.id}, request_id="r5")
    await viewer.close()
    assert await presence(watcher) == [
        ("viewing", project.id, bob.id, bug.id),
        ("stopped_viewing", project.id, bob.id, bug.id),
        ("left", project.id, bob.id, None),
    ]
    assert await presence(outsider) == []

    refused = await outsider.command("presence.view", {"bug_report_id": bug.id})
    assert refused["type"] == "error" and refused["payload"]["code"] == "not_found", refused
    missing = await outsider.command("presence.view", {}, request_id="r6")
    assert missing["payload"]["code"] == "missing_required_fields", missing
    assert await presence(watcher) == []


async def test_the_snapshot_is_for_members_and_admins_and_lists_members_only(
    server: LiveServer,
) -> None:
    factory, (alice, bob, outsider), project = await cast(server)
    boss = await factory.user(Role.ADMIN, name="boss")
    bug = await factory.bug(project, alice)
    await server.connect(alice, query=FOLLOW)
    watcher = await server.connect(bob, query=FOLLOW)
    admin = await server.connect(boss, query=FOLLOW)
    # An admin who is not a member views unseen, and is not listed as online.
    ack = await admin.command("presence.view", {"bug_report_id": bug.id})
    assert ack["payload"]["result"]["shown"] is False
    assert [m for m in await presence(watcher) if m[2] == boss.id] == []
    body = await snapshot(server, boss, project)
    assert body["project_id"] == project.id
    assert online(body) == {"alice": 1, "bob": 1}
    assert viewing(body) == {} and body["truncated"] is False

    async with server.http(outsider) as http:
        response = await http.get(f"/api/v1/projects/{project.id}/presence")
        assert response.status_code == 404
        assert response.json()["payload"]["code"] == "not_found"
        assert (await http.get("/api/v1/projects/999999/presence")).status_code == 404


async def test_a_removed_member_drops_out_of_the_list_and_out_of_the_audience(
    server: LiveServer,
) -> None:
    factory, (alice, bob, dave), project = await cast(server)
    removed = await server.connect(bob, query=FOLLOW)
    watcher = await server.connect(alice, query=FOLLOW)
    await presence(removed)
    await projects.remove_member(server.ctx, await factory.admin(), project.id, bob.id)
    await removed.expect_event("membership", "removed")
    assert online(await snapshot(server, alice, project)) == {"alice": 1}

    await projects.add_member(
        server.ctx, await factory.admin(), project.id, MembershipAdd(user_id=dave.id)
    )
    await server.connect(dave, query=FOLLOW)
    assert await presence(removed) == []  # no longer in the project's audience
    await presence(watcher)
    await removed.close()
    assert await presence(watcher) == []  # nor is his going offline told to it


async def test_presence_view_counts_against_the_message_rate_limit() -> None:
    async with live_server(ws_rate_limit_capacity=3, ws_rate_limit_refill_per_second=0.01) as s:
        factory = Factory(s.ctx)
        alice = await factory.user(name="alice")
        project = await factory.project(alice)
        bug = await factory.bug(project, alice)
        client = await s.connect(alice, query=FOLLOW)
        for n in range(3):
            answer = await client.command("presence.view", {"bug_report_id": bug.id}, f"r{n}")
            assert answer["type"] == "ack", answer
        limited = await client.command("presence.view", {"bug_report_id": None}, "r3")
        assert limited["payload"]["code"] == "rate_limited", limited
        assert viewing(await snapshot(s, alice, project)) == {bug.id: ["alice"]}


async def test_an_sse_stream_counts_as_a_connection(server: LiveServer) -> None:
    _, (alice, bob, _), project = await cast(server)
    watcher = await server.connect(alice, query=FOLLOW)
    await presence(watcher)
    async with open_stream(server, bob) as stream:
        assert (await stream.next()).data["type"] == "welcome"
        assert await presence(watcher) == [("joined", project.id, bob.id, None)]
        assert online(await snapshot(server, alice, project)) == {"alice": 1, "bob": 1}
    assert await presence(watcher, quiet=1.0) == [("left", project.id, bob.id, None)]


async def test_presence_messages_are_opt_in(server: LiveServer) -> None:
    """A client that did not ask (`?presence=true`, or a `presence.view`) gets no presence
    message: no message type it does not expect, no chatter. A view starts it following."""
    _, (alice, bob, _), project = await cast(server)
    plain = await server.connect(alice)
    viewer = await server.connect(alice)
    followed = await server.connect(bob, query=FOLLOW)
    await plain.send({"type": "ping"})
    assert (await plain.next())["type"] == "pong"  # not bob's "joined"
    assert (await viewer.command("presence.view", {"bug_report_id": None}))["type"] == "ack"
    await followed.close()
    assert await presence(viewer, quiet=1.0) == [("left", project.id, bob.id, None)]
    assert await presence(plain, quiet=0.3) == []


async def test_a_resync_tells_every_follower_and_no_one_else(server: LiveServer) -> None:
    """When presence changes may have been missed (the cluster's channel was lost and is back:
    tests/bus/test_redis_presence.py), each connection following presence is told to read
    the snapshot again; the others hear nothing of it."""
    _, (alice, bob, _), _ = await cast(server)
    plain = await server.connect(alice)
    followers = [await server.connect(bob, query=FOLLOW), await server.connect(alice, query=FOLLOW)]
    await presence_messages(followers[0], 0.4)  # the joins so far
    await presence_messages(followers[1], 0.4)
    server.gateway.presence.resync()
    for follower in followers:
        message = await follower.expect(lambda m: m["type"] == "presence")
        assert message == {"type": "presence", "event": "resync", "payload": {}}
    assert await presence_messages(plain, 0.3) == []


async def test_changes_reach_the_projects_followers_however_many_follow_elsewhere(
    server: LiveServer,
) -> None:
    """The followers of a change are looked up from the smaller side (the following users, or
    the project's): with more users following elsewhere than the project has, the project's
    followers still get it, and the others do not."""
    factory, (alice, bob, carol), project = await cast(server)
    dave = await factory.user(name="dave")
    await factory.project(carol, dave)
    member = await server.connect(bob, query=FOLLOW)
    elsewhere = [await server.connect(u, query=FOLLOW) for u in (carol, dave)]
    for client in (member, *elsewhere):
        await presence_messages(client, 0.4)  # the joins so far
    await server.connect(alice)  # 3 users follow; the project has 2 connected members
    assert await presence(member) == [("joined", project.id, alice.id, None)]
    for client in elsewhere:
        assert await presence_messages(client, 0.3) == []
