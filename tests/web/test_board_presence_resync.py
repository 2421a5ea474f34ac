"""The board's presence after the server lost its Redis channel (issue 14.1): a `bugstream
serve` process on the Redis bus, headless Chromium, dana and rex on the board.

The server's pub/sub connections are killed (`CLIENT KILL TYPE pubsub`) and rex closes his
board at once: his `left` may be published while the server is not subscribed, and be lost.
Once subscribed again (redis-py reconnects by itself) the server sends `resync`, and the board
reads the snapshot again (a GET of the project's presence, with no reconnect of the page), so
dana sees rex go whether or not the `left` came. Without the board's handling of `resync`
this fails (checked). Needs Redis (`BUGSTREAM_TEST_REDIS_URL`) and Chromium.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from redis import Redis

from tests.support.redis import dedicated_db
from tests.web.browser import chromium
from tests.web.server import Site, ok
from tests.web.test_board_e2e import LIVE, Boards, start_team_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A Redis database of its own (tests/support/redis.py is async: its claim is held on a
    loop in a thread of its own, as this test drives Playwright's sync API)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="redis-claim", daemon=True)
    thread.start()
    claim = dedicated_db()
    try:
        yield asyncio.run_coroutine_threadsafe(claim.__aenter__(), loop).result(60)
    finally:
        asyncio.run_coroutine_threadsafe(claim.__aexit__(None, None, None), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Site]:
    site = Site(Path(tmp_path_factory.mktemp("resync-site")))
    site.settings["BUGSTREAM_BUS_URL"] = redis_url
    _, project = start_team_site(site)
    try:
        with site.api("dana") as dana:
            ok(dana.post("/bugs", json={"project_id": project["id"], "title": "A bug"}))
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def test_the_board_reads_presence_again_after_the_server_lost_its_channel(
    browser: Browser, site: Site, redis_url: str
) -> None:
    from playwright.sync_api import expect

    boards = Boards(browser, site)
    try:
        dana = boards.open("dana")
        rex = boards.open("rex")
        online = dana.locator("#online-list .online-user")
        expect(online).to_have_text(["dana", "rex"], timeout=LIVE)
        reads: list[str] = []
        dana.on(
            "request",
            lambda r: reads.append(r.url) if r.url.endswith("/presence") else None,
        )

        with Redis.from_url(redis_url) as redis:
            assert redis.client_kill_filter(_type="pubsub") >= 1
        rex.context.close()
        boards.pages.remove(rex)

        expect(online).to_have_text(["dana"], timeout=5_000)
        assert reads, "the board did not read the snapshot again"
        expect(dana.locator("#connection")).to_have_text("connected")  # no reconnect needed
        assert "clients are told to resync" in site.output()
    finally:
        for page in boards.pages:
            page.context.close()
    assert not boards.errors, boards.errors
