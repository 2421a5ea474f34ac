"""Every script in examples/ runs against a live server and prints what docs/integration.md
says it prints."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from bugstream.domain.enums import Role
from bugstream.domain.models import BugReport
from bugstream.services import bugs
from tests.support.factory import PASSWORD, Factory
from tests.support.live import live_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GUIDE = ROOT / "docs" / "integration.md"
TIMEOUT = 30.0


async def start(script: str, *args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )


async def finish(proc: asyncio.subprocess.Process) -> list[str]:
    stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, stderr.decode()
    return stdout.decode().splitlines()


async def first_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    return (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode().rstrip("\n")


def test_every_example_is_exercised_and_documented() -> None:
    tested = {"tail_events.py", "create_bug_and_wait.py", "token_provider.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested
    guide = GUIDE.read_text(encoding="utf-8")
    for name in tested:
        assert f"(../examples/{name})" in guide, f"docs/integration.md does not link {name}"


async def test_tail_events(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        env = {"BUGSTREAM_URL": live.ws_url, "BUGSTREAM_TOKEN": live.token_for(dev)}
        proc = await start("tail_events.py", "--count", "2", env=env)
        assert re.fullmatch(r"\[connected \([0-9a-f]+\)\]", await first_line(proc))
        bug = await factory.bug(project, dev, title="Crash on save")
        await factory.comment(bug, dev)
        lines = await finish(proc)
    assert lines[0] == f"new bug #{bug.id} in project {project.id}: 'Crash on save'"
    assert re.fullmatch(r"#\d+ bug_report\.created", lines[1])
    assert lines[2] == f"comment created on bug #{bug.id}"
    assert re.fullmatch(r"#\d+ comment\.created", lines[3])
    assert lines[4:] == ["[closed]"]


async def test_create_bug_and_wait(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        env = {"BUGSTREAM_URL": live.ws_url, "BUGSTREAM_TOKEN": live.token_for(dev)}
        proc = await start("create_bug_and_wait.py", "--project", str(project.id), env=env)
        lines = await finish(proc)
    created = re.fullmatch(r"created bug #(\d+) \(open, high\)", lines[0])
    assert created, lines
    bug: BugReport = await bugs.get_bug(factory.ctx, Factory.actor(dev), int(created[1]))
    assert (bug.title, bug.project_id, bug.priority.value) == ("Crash on save", project.id, "high")
    assert re.fullmatch(r"event #\d+ confirms it: 'Crash on save'", lines[1])
    assert lines[2:] == ["refused: priority: enum"]


async def test_token_provider_refreshes_on_the_same_connection(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx, access_token_ttl_seconds=2) as live:
        env = {
            "BUGSTREAM_URL": live.ws_url,
            "BUGSTREAM_USERNAME": dev.username,
            "BUGSTREAM_PASSWORD": PASSWORD,
        }
        proc = await start("token_provider.py", "--seconds", "3", env=env)
        assert await first_line(proc) == "fetched token 1 (valid 2 s)"
        connected = await first_line(proc)
        assert connected.startswith(f"connected as {dev.username} (")
        connection_id = connected.rsplit("(", 1)[1].rstrip(")")
        for n in range(8):
            await factory.bug(project, dev, title=f"tick {n}")
            await asyncio.sleep(0.3)
        lines = await finish(proc)
    fetched = [line for line in lines if line.startswith("fetched token")]
    assert len(fetched) >= 2  # refreshed at least twice more within 3 s of 2-s tokens
    assert sum(1 for line in lines if re.fullmatch(r"#\d+ bug_report\.created", line)) == 8
    summary = re.fullmatch(r"after 3 s: (\d+) tokens, (.+) \((\w+)\)", lines[-1])
    assert summary, lines[-1]
    assert int(summary[1]) == len(fetched) + 1
    assert summary[2] == "the same connection" and summary[3] == connection_id
