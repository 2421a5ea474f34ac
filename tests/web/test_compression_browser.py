"""permessage-deflate in Chromium (issue 14.4): the browser always offers it; `bugstream serve`
agrees, and both a bare `WebSocket` and the JS client (`/static/bugstream.js`) get large and
short events intact over the compressed connection. With BUGSTREAM_WS_COMPRESSION=false the
same page works uncompressed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.web.browser import chromium
from tests.web.server import Site
from tests.web.test_cross_origin import serve_page

if TYPE_CHECKING:
    from playwright.sync_api import Browser

LONG = ("Reproduced on the release build: the export stalls at 99 percent. " * 30).strip()

PAGE = """<!doctype html><title>compressed events</title><script type=module>
const api = new URLSearchParams(location.search).get("api");
const wsUrl = api.replace("http", "ws") + "/ws";
window.run = async (username, password, long) => {
  const out = { raw: [], client: [] };
  try {
    const signIn = await fetch(`${api}/api/v1/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    const token = (await signIn.json()).access_token;
    const ticket = async () => (await (await fetch(`${api}/api/v1/auth/ws-ticket`, {
      method: "POST", headers: { authorization: `Bearer ${token}` },
    })).json()).ticket;
    const ws = new WebSocket(`${wsUrl}?ticket=${await ticket()}`);
    const rawDone = new Promise((resolve, reject) => {
      ws.onerror = () => reject(new Error("WebSocket failed"));
      ws.onmessage = (message) => {
        const data = JSON.parse(message.data);
        if (data.type === "project") out.raw.push(data.payload.description);
        if (out.raw.length === 2) resolve();
      };
    });
    await new Promise((resolve) => { ws.onopen = resolve; });
    out.extensions = ws.extensions;
    const { BugstreamClient } = await import(`${api}/static/bugstream.js`);
    const client = new BugstreamClient(wsUrl, { token, backoff: { maxAttempts: 0 } });
    const clientDone = new Promise((resolve) => client.on("project", "created", (event) => {
      out.client.push(event.payload.description);
      if (out.client.length === 2) resolve();
    }));
    await client.connect();
    for (const [name, description] of [["Long", long], ["Short", "short"]]) {
      await fetch(`${api}/api/v1/projects`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ name, description }),
      });
    }
    await Promise.all([rawDone, clientDone]);
    ws.close();
    client.close();
  } catch (error) {
    out.error = String(error);
  }
  return out;
};
window.ready = true;
</script>"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def run_page(browser: Browser, tmp_path: Path, settings: dict[str, str]) -> dict[str, Any]:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "app.html").write_text(PAGE)
    pages, origin = serve_page(tmp_path / "pages", "127.0.0.1")
    site = Site(tmp_path / "site", settings=settings)
    site.data_dir.mkdir()
    site.create_user("ada", "admin")
    site.start()
    try:
        page = browser.new_page()
        page.goto(f"{origin}/app.html?api={site.url}")
        page.wait_for_function("window.ready === true")
        result: dict[str, Any] = page.evaluate(
            "([u, p, l]) => window.run(u, p, l)", ["ada", site.passwords["ada"], LONG]
        )
        page.close()
    finally:
        site.stop()
        pages.shutdown()
    return result


def test_chromium_gets_events_over_a_compressed_connection(
    browser: Browser, tmp_path: Path
) -> None:
    result = run_page(browser, tmp_path, {})
    assert result["extensions"] == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    )
    assert result["raw"] == [LONG, "short"], result
    assert result["client"] == [LONG, "short"], result


def test_chromium_works_uncompressed_when_the_setting_is_off(
    browser: Browser, tmp_path: Path
) -> None:
    result = run_page(browser, tmp_path, {"BUGSTREAM_WS_COMPRESSION": "false"})
    assert result["extensions"] == ""
    assert result["raw"] == [LONG, "short"], result
    assert result["client"] == [LONG, "short"], result
