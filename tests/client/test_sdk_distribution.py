"""The SDK alone (issue 13.6): `bugstream-client` (clients/python/pyproject.toml) installs
into a fresh virtual environment without the server's dependencies, and its client follows a
live server from there. Uses uv (which `.ci/run` installs) and the package index."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bugstream.domain.enums import Role
from tests.conftest import skip_or_fail
from tests.support.factory import Factory
from tests.support.live import live_server

ROOT = Path(__file__).parents[2]
SERVER_ONLY = ["fastapi", "sqlalchemy", "uvicorn", "redis", "asyncpg", "alembic", "jwt"]

SCRIPT = """
import asyncio, json, sys
from bugstream.client import Client

async def main(url, token):
    async with Client(url, token=token) as client:
        print("ready", flush=True)
        async for event in client.events():
            print(json.dumps({"name": event.name, "title": event.raw.get("title")}), flush=True)
            return

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.fixture(scope="module")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        skip_or_fail("the SDK distribution test needs uv (python3 -m pip install uv)")
    venv = tmp_path_factory.mktemp("sdk") / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), str(ROOT / "clients" / "python")],
        check=True,
        timeout=300,
    )
    return python


def test_the_sdk_installs_without_the_servers_dependencies(sdk_python: Path) -> None:
    probe = (
        "import importlib.util, json, bugstream.client, bugstream.listen;"
        f"print(json.dumps([m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m)]))"
    )
    found = subprocess.run(
        [str(sdk_python), "-c", probe], check=True, capture_output=True, text=True
    )
    assert json.loads(found.stdout) == []
    assert (sdk_python.parent / "bugstream-listen").exists()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_installed_sdk_follows_a_live_server(sdk_python: Path, factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        reader = await asyncio.create_subprocess_exec(
            str(sdk_python), "-c", SCRIPT, live.ws_url, live.token_for(dev),
            stdout=asyncio.subprocess.PIPE, cwd="/",
        )  # fmt: skip
        assert reader.stdout is not None
        async with asyncio.timeout(30):
            assert (await reader.stdout.readline()).strip() == b"ready"
            await factory.bug(project, dev, title="seen from the SDK alone")
            line = await reader.stdout.readline()
            await reader.wait()
    assert json.loads(line) == {"name": "bug_report.created", "title": "seen from the SDK alone"}
