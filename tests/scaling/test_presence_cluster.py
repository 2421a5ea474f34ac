"""Presence across two `bugstream serve` processes on one Redis (and PostgreSQL).

- A user connected to instance A is `joined` for a member connected to B, and listed by B's
  `GET /api/v1/projects/{id}/presence`; their `presence.view` on A is `viewing` on B. A second
  connection on B is not a second `joined`; closing it is not a `left`.
- A user whose connections are on both instances is counted once per connection across them.
- kill -9 instance A: within a few seconds (its liveness key lapses after
  BUGSTREAM_WS_INSTANCE_TTL_SECONDS, 3 s) B's clients get `stopped_viewing` and `left` for the
  users who were only on A, not for those still connected to B, and B's GET no longer lists them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bugstream.domain.models import Project, User
from tests.support.cluster import Cluster, Instance, connect, running_cluster
from tests.support.factory import Factory
from tests.support.live import Client
from tests.support.presence import presence_messages

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

#: The instance TTL (3 s), a refresh of the survivor (1 s) and slack for a busy machine.
GONE_WITHIN = 8.0


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as made:
        yield made


async def presence(client: Client, quiet: float = 0.6) -> list[tuple[str, int, Any]]:
    """`(event, user, bug report)` of every presence message until `quiet` seconds pass."""
    return [
        (m["event"], m["payload"]["user"]["id"], m["payload"].get("bug_report_id"))
        for m in await presence_messages(client, quiet)
    ]


async def online(cluster: Cluster, instance: Instance, user: User, project: Project) -> Any:
    async with cluster.http(instance, user) as http:
        response = await http.get(f"/api/v1/projects/{project.id}/presence")
    assert response.status_code == 200, response.text
    body = response.json()
    listed = {u["username"]: u["connections"] for u in body["online"]}
    viewers = {v["bug_report_id"]: [u["username"] for u in v["users"]] for v in body["viewing"]}
    return listed, viewers


async def test_presence_is_cluster_wide_and_a_killed_instance_s_users_leave(
    cluster: Cluster,
) -> None:
    factory = Factory(cluster.ctx)
    alice = await factory.user(name="alice")  # watches on B
    bob = await factory.user(name="bob")  # only on A
    carol = await factory.user(name="carol")  # on A and on B
    project = await factory.project(alice, bob, carol)
    bug = await factory.bug(project, alice)
    a, b = await asyncio.gather(cluster.start("a"), cluster.start("b"))

    watcher = await connect(b, cluster.token_for(alice), query="presence=true")
    await presence(watcher)
    bob_on_a = await connect(a, cluster.token_for(bob), query="presence=true")
    assert await presence(watcher) == [("joined", bob.id, None)]
    assert (await online(cluster, b, alice, project))[0] == {"alice": 1, "bob": 1}

    ack = await bob_on_a.command("presence.view", {"bug_report_id": bug.id})
    assert ack["type"] == "ack", ack
    assert await presence(watcher) == [("viewing", bob.id, bug.id)]
    assert (await online(cluster, b, alice, project))[1] == {bug.id: ["bob"]}

    carol_on_a = await connect(a, cluster.token_for(carol), query="presence=true")
    carol_on_b = await connect(b, cluster.token_for(carol), query="presence=true")
    await carol_on_b.command("presence.view", {"bug_report_id": bug.id})
    await carol_on_a.command("presence.view", {"bug_report_id": bug.id})
    # One joined and one viewing for carol, whichever instance was first.
    assert await presence(watcher) == [("joined", carol.id, None), ("viewing", carol.id, bug.id)]
    assert await online(cluster, b, alice, project) == (
        {"alice": 1, "bob": 1, "carol": 2},
        {bug.id: ["bob", "carol"]},
    )

    a.kill()
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    gone: list[tuple[str, int, Any]] = []
    while len(gone) < 2 and loop.time() - killed_at < GONE_WITHIN + 1:
        gone += await presence(watcher, quiet=0.5)
    assert loop.time() - killed_at < GONE_WITHIN
    # bob was only on A: he stops viewing and leaves; carol is still on B: no change.
    assert gone == [("stopped_viewing", bob.id, bug.id), ("left", bob.id, None)]
    assert await online(cluster, b, alice, project) == (
        {"alice": 1, "carol": 1},
        {bug.id: ["carol"]},
    )
