"""`bugstream listen` as a user runs it: a subprocess against a live server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from bugstream.client import Transport
from bugstream.domain.enums import BugStatus, Role
from bugstream.domain.models import BugStatusChange
from bugstream.services import bugs
from bugstream.services.context import ServiceContext
from bugstream.store.outbox import latest_event_id, read_events_after
from tests.support.factory import Factory
from tests.support.live import live_server

BUGSTREAM = str(Path(sys.executable).parent / "bugstream")
TIMEOUT = 30.0


async def start_listen(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        BUGSTREAM,
        "listen",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


async def read_line(stream: asyncio.StreamReader | None) -> str:
    assert stream is not None
    line = await asyncio.wait_for(stream.readline(), TIMEOUT)
    assert line, "the stream ended"
    return line.decode().rstrip("\n")


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


async def mark(ctx: ServiceContext) -> int:
    async with ctx.db.read() as repos:
        return await latest_event_id(repos.conn)


async def envelopes_after(ctx: ServiceContext, after: int) -> list[dict[str, Any]]:
    async with ctx.db.read() as repos:
        return [e.envelope() for e in await read_events_after(repos.conn, after)]


async def test_listen_prints_readable_lines_resuming_and_live(
    factory: Factory, tmp_path: Path
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    start = await mark(factory.ctx)
    bug = await factory.bug(project, dev, title="Crash on save")
    await bugs.change_bug_status(
        factory.ctx, Factory.actor(dev), bug.id, BugStatusChange(status=BugStatus.IN_PROGRESS)
    )
    async with live_server(factory.ctx) as live:
        token_file = tmp_path / "token"
        token_file.write_text(live.token_for(dev) + "\n")
        proc = await start_listen(
            "--url", live.ws_url, "--token-file", str(token_file),
            "--last-event-id", str(start), "--count", "3",
        )  # fmt: skip
        assert (await read_line(proc.stderr)).startswith("connected (")
        comment = await factory.comment(bug, dev, "looks bad")
        code, stdout, _ = await finish(proc)
    ids = [e["event_id"] for e in await envelopes_after(factory.ctx, start)]
    assert code == 0
    assert stdout.splitlines() == [
        f"#{ids[0]} bug_report.created  id={bug.id} title='Crash on save' project={project.id}",
        f"#{ids[1]} bug_report.status_changed  id={bug.id} title='Crash on save' "
        f"status=in_progress project={project.id}",
        f"#{ids[2]} comment.created  id={comment.id} bug={bug.id} user={dev.id} "
        "content='looks bad'",
    ]


async def test_listen_json_lines_survive_a_server_restart(
    factory: Factory, transport: Transport
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    start = await mark(factory.ctx)
    async with live_server(factory.ctx) as first:
        port = first.port
        proc = await start_listen(
            "--url", first.ws_url, "--json", "--count", "4",
            "--initial-delay", "0.1", "--max-attempts", "30", "--transport", transport,
            env={"BUGSTREAM_TOKEN": first.token_for(dev)},
        )  # fmt: skip
        connected = await read_line(proc.stderr)
        assert connected.startswith("connected (")
        assert connected.endswith(" over SSE (the WebSocket fallback)") == (transport == "sse")
        await factory.bug(project, dev, title="one")
        await factory.bug(project, dev, title="two")
        lines = [await read_line(proc.stdout), await read_line(proc.stdout)]
    # Down: one change is committed meanwhile.
    assert "disconnected (close code 1001); reconnecting" in await read_line(proc.stderr)
    await factory.bug(project, dev, title="three")
    async with live_server(factory.ctx, port=port):
        await factory.bug(project, dev, title="four")
        code, stdout, stderr = await finish(proc)
    lines += stdout.splitlines()
    assert code == 0, stderr
    received = [json.loads(line) for line in lines]
    assert received == await envelopes_after(factory.ctx, start)
    assert [m["payload"]["title"] for m in received] == ["one", "two", "three", "four"]


async def test_listen_exits_non_zero_with_a_clear_message_on_a_bad_token(
    factory: Factory,
) -> None:
    async with live_server(factory.ctx) as live:
        proc = await start_listen("--url", live.ws_url, "--token", "not-a-jwt")
        code, stdout, stderr = await finish(proc)
    assert code == 1
    assert stdout == ""
    assert stderr.startswith("error: the server closed the connection with code 4001")
    assert "not reconnecting" in stderr


async def test_listen_without_a_token_says_what_is_missing() -> None:
    # `python -m bugstream.listen` is the same command, for installs without the server.
    env = {k: v for k, v in os.environ.items() if k != "BUGSTREAM_TOKEN"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bugstream.listen", "--url", "ws://127.0.0.1:9/ws",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    code, _, stderr = await finish(proc)
    assert code == 1
    assert "give --token, --token-file or $BUGSTREAM_TOKEN" in stderr
