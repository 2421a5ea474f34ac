"""kill -9 of a server on SQLite while it writes: every write it acknowledged is there after
the restart, with its event, in order, and a client resuming gets them all.

SQLite runs in WAL mode with `synchronous=NORMAL` (store/database.py): a commit is in the WAL
file (the operating system's cache) before the write is answered, so a crashed *process* loses
nothing it acknowledged; only a power loss or an operating-system crash can lose the last
commits since the WAL was synced (docs/deployment.md, "Durability"). This is the process case.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx

from bugstream.domain.enums import Role
from bugstream.store import migrate
from bugstream.store.database import create_engine
from bugstream.store.outbox import read_events_after
from tests.support.cluster import Cluster, connect
from tests.support.factory import Factory


async def test_every_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bugstream.db'}"
    engine = create_engine(url)
    await migrate.upgrade(engine)
    await engine.dispose()
    cluster = Cluster(url, "memory://", tmp_path)
    try:
        factory = Factory(cluster.ctx)
        admin = await factory.user(Role.ADMIN)
        dev = await factory.user(Role.DEVELOPER)
        project = await factory.project(dev)
        instance = await cluster.start("a")
        acknowledged: list[int] = []

        async def writer(n: int) -> None:
            async with cluster.http(instance, admin) as http:
                for i in range(1000):
                    body = {"project_id": project.id, "title": f"w{n}-{i}"}
                    try:
                        response = await http.post("/api/v1/bugs", json=body)
                    except httpx.TransportError:
                        return  # the server died under us: not acknowledged
                    assert response.status_code == 201, response.text
                    acknowledged.append(response.json()["id"])

        writers = [asyncio.create_task(writer(n)) for n in range(4)]
        while len(acknowledged) < 200:
            assert not all(t.done() for t in writers), [t.exception() for t in writers]
            await asyncio.sleep(0.01)
        instance.kill()  # mid-write, with requests in flight
        for task in writers:
            with contextlib.suppress(Exception):
                await task
        assert len(acknowledged) >= 200

        restarted = await cluster.start("b")
        async with cluster.http(restarted, admin) as http:
            for bug_id in acknowledged:
                assert (await http.get(f"/api/v1/bugs/{bug_id}")).status_code == 200
        async with cluster.db.read() as repos:
            events = await read_events_after(repos.conn, 0, 100_000)
        created = [e.payload["id"] for e in events if e.type == "bug_report"]
        assert set(acknowledged) <= set(created), "every acknowledged bug has its event"
        ids = [e.event_id for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

        # A client that resumes from before the crash gets every one of them, in order.
        client = await connect(restarted, cluster.token_for(dev), query="last_event_id=0")
        seen: list[int] = []
        while len(seen) < len(created):
            message = await client.next(timeout=10.0)
            if message.get("type") == "bug_report":
                seen.append(int(message["payload"]["id"]))
        assert seen == created
        await client.close()
    finally:
        await cluster.close()
