"""Two `bugstream serve` processes on one PostgreSQL database and one Redis: one event log.

A client on instance A receives, in commit order, what is written through instance B's REST
API, and only what it may see; the per-user connection limit counts connections on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bugstream.domain.enums import Role
from bugstream.domain.models import User
from bugstream.store.outbox import read_events_after
from tests.support.cluster import Cluster, Instance, connect, running_cluster
from tests.support.factory import Factory
from tests.support.live import Client

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(tmp_path) as made:
        yield made


async def until_event_id(client: Client, last_id: int) -> list[dict[str, Any]]:
    """Every event message up to and including `last_id`."""
    found: list[dict[str, Any]] = []
    while not found or found[-1]["event_id"] < last_id:
        message = await client.next(timeout=10)
        if "event_id" in message:
            found.append(message)
    return found


async def test_a_client_on_one_instance_gets_writes_made_through_the_other_in_order(
    cluster: Cluster,
) -> None:
    factory = Factory(cluster.ctx)
    dev = await factory.user(Role.DEVELOPER)
    outsider = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    a, b = await asyncio.gather(cluster.start("a"), cluster.start("b"))

    on_a = await connect(a, cluster.token_for(dev))
    outsider_on_a = await connect(a, cluster.token_for(outsider))
    on_b = await connect(b, cluster.token_for(dev))
    start = on_a.welcome["latest_event_id"]

    async with cluster.http(b, dev) as http:
        for i in range(15):
            response = await http.post(
                "/api/v1/bugs", json={"project_id": project.id, "title": f"bug {i}"}
            )
            assert response.status_code == 201, response.text
            bug_id = response.json()["id"]
            response = await http.post(
                f"/api/v1/bugs/{bug_id}/comments", json={"content": f"comment {i}"}
            )
            assert response.status_code == 201, response.text

    async with cluster.ctx.db.read() as repos:
        written = list(await read_events_after(repos.conn, start, 10_000))
    expected = [(e.type.value, e.event.value, e.event_id) for e in written]
    assert len(expected) == 30

    for client in (on_a, on_b):
        got = await until_event_id(client, written[-1].event_id)
        assert [(m["type"], m["event"], m["event_id"]) for m in got] == expected
        assert [m["payload"] for m in got] == [e.payload for e in written]
    assert await outsider_on_a.events(quiet=0.5) == []
    assert await on_a.events(quiet=0.2) == []  # nothing twice


async def refused(instance: Instance, token: str) -> tuple[dict[str, Any], int | None]:
    """Open a connection expected to be refused: the error sent, and the close code."""
    client = await connect(instance, token, welcome=False)
    first = await client.next()
    code, _ = await client.closed()
    return first, code


async def accepted_soon(instance: Instance, token: str) -> Client:
    """A connection that must be accepted once a just-released slot is free (the release
    travels to Redis asynchronously after the close)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        client = await connect(instance, token, welcome=False)
        first = await client.next()
        if first["type"] == "welcome":
            return client
        await client.closed()
        assert loop.time() < deadline, first
        await asyncio.sleep(0.1)


async def test_the_per_user_connection_limit_holds_across_instances(cluster: Cluster) -> None:
    factory = Factory(cluster.ctx)
    dev: User = await factory.user(Role.DEVELOPER)
    other: User = await factory.user(Role.DEVELOPER)
    a, b = await asyncio.gather(cluster.start("a"), cluster.start("b"))
    token = cluster.token_for(dev)

    held = [await connect(a, token), await connect(a, token), await connect(b, token)]
    for instance in (a, b):
        error, code = await refused(instance, token)
        assert code == 4102
        assert error["type"] == "error"
        assert error["payload"]["code"] == "too_many_connections"
        assert error["payload"]["limit"] == 3
    # Another user is not affected.
    await connect(b, cluster.token_for(other))

    # Closing one on A frees a slot, taken on B.
    await held[0].close()
    replacement = await accepted_soon(b, token)
    error, code = await refused(a, token)
    assert code == 4102
    # The survivors still work.
    for client in (held[1], held[2], replacement):
        await client.send({"type": "ping", "payload": {}})
        assert (await client.expect(lambda m: m["type"] == "pong"))["type"] == "pong"


async def test_resuming_on_the_other_instance_at_the_edge_of_the_shared_window(
    tmp_path: Path,
) -> None:
    """The replay window is the Redis log's: five events here. A client that left A resumes
    on B: from inside the window it gets every event it missed; from outside it is told to
    resync, then follows the live stream."""
    async with running_cluster(tmp_path, replay_window_events=5) as cluster:
        factory = Factory(cluster.ctx)
        dev = await factory.user(Role.DEVELOPER)
        project = await factory.project(dev)
        a, b = await asyncio.gather(cluster.start("a"), cluster.start("b"))
        token = cluster.token_for(dev)

        on_a = await connect(a, token)
        async with cluster.http(a, dev) as http:
            for i in range(8):
                response = await http.post(
                    "/api/v1/bugs", json={"project_id": project.id, "title": f"bug {i}"}
                )
                assert response.status_code == 201, response.text
        async with cluster.ctx.db.read() as repos:
            written = list(await read_events_after(repos.conn, on_a.welcome["latest_event_id"]))
        ids = [e.event_id for e in written]
        assert [m["event_id"] for m in await until_event_id(on_a, ids[-1])] == ids
        await on_a.close()

        inside = await connect(b, token, query=f"last_event_id={ids[-6]}")
        assert [m["event_id"] for m in await until_event_id(inside, ids[-1])] == ids[-5:]

        outside = await connect(b, token, query=f"last_event_id={ids[0]}")
        resync = await outside.next()
        assert resync["type"] == "resync_required"
        assert resync["payload"]["last_event_id"] == ids[0]
        assert resync["payload"]["oldest_event_id"] == ids[-5]
        async with cluster.http(a, dev) as http:
            response = await http.post(
                "/api/v1/bugs", json={"project_id": project.id, "title": "live"}
            )
            assert response.status_code == 201, response.text
        live = await outside.next(timeout=10)
        assert live["event_id"] > ids[-1]
        assert live["payload"]["title"] == "live"
        assert await inside.next(timeout=10) == live
