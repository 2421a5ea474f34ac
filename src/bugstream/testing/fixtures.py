"""pytest fixtures for applications tested against bugstream. Enable them in a conftest.py:

    pytest_plugins = ["bugstream.testing.fixtures"]

    async def test_the_admin_sees_new_projects(bugstream_live):
        admin = await bugstream_live.create_user("ada", Role.ADMIN)
        client = await bugstream_live.connect(bugstream_live.token_for(admin))
        ...

`bugstream_live` is a running server (embedded defaults: SQLite in a temporary directory,
the memory bus) for one test; its clients are closed afterwards. Async tests need
pytest-asyncio (`bugstream[testing]`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bugstream.testing.live import LiveServer, live_server


@pytest_asyncio.fixture
async def bugstream_live() -> AsyncIterator[LiveServer]:
    async with live_server() as live:
        yield live
