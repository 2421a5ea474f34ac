"""The examples of docs/extending.md ("Test helpers"), run as written: `bugstream.testing` is
public API, and its documentation must stay true."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bugstream.domain.enums import Role
from bugstream.testing.live import LiveServer

DOC = Path(__file__).parents[1] / "docs" / "extending.md"


def _examples() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Test helpers") :]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "docs/extending.md's test helper examples changed: update this test"
    namespace: dict[str, Any] = {}
    exec("import pytest\n" + "\n".join(blocks), namespace)
    return namespace


async def test_the_live_server_example_works() -> None:
    await _examples()["test_a_new_project_reaches_the_admins_stream"]()


async def test_the_scripted_server_example_works() -> None:
    await _examples()["test_my_app_stops_on_a_revoked_token"]()


pytest_plugins = ["bugstream.testing.fixtures"]


async def test_the_pytest_fixture_gives_a_running_server(bugstream_live: LiveServer) -> None:
    dev = await bugstream_live.create_user("dev", Role.DEVELOPER)
    client = await bugstream_live.connect(bugstream_live.token_for(dev))
    assert client.welcome is not None
    assert client.welcome["user"]["username"] == "dev"
    await client.send({"type": "ping"})
    assert (await client.next())["type"] == "pong"
