"""A front end on another origin, in Chromium (issue 13.1): a page served from
http://127.0.0.2:<port> signs in over REST, imports /static/bugstream.js and follows /ws on
`bugstream serve` at 127.0.0.1, because BUGSTREAM_ALLOWED_ORIGINS lists it; the same page from
an origin the setting does not list (127.0.0.3, not a local-name origin) can do none of it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.web.browser import chromium
from tests.web.server import Site, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser

PAGE = """<!doctype html><title>a front end elsewhere</title><script type=module>
const api = new URLSearchParams(location.search).get("api");
window.run = async (username, password) => {
  const out = {};
  try {
    const signIn = await fetch(`${api}/api/v1/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    const token = (await signIn.json()).access_token;
    out.signedIn = typeof token === "string";
    const { BugstreamClient } = await import(`${api}/static/bugstream.js`);
    const client = new BugstreamClient(api.replace("http", "ws") + "/ws", {
      token, backoff: { maxAttempts: 0 },
    });
    const created = new Promise((resolve) =>
      client.on("project", "created", (event) => resolve(event.payload.name)));
    await client.connect();
    out.welcomed = true;
    await fetch(`${api}/api/v1/projects`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "Made elsewhere" }),
    });
    out.event = await created;
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


def serve_page(directory: Path, host: str) -> tuple[ThreadingHTTPServer, str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(directory))
    server = ThreadingHTTPServer((host, free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def test_a_page_on_an_allowed_origin_uses_rest_the_module_and_ws(
    browser: Browser, tmp_path: Path
) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "app.html").write_text(PAGE)
    allowed_server, allowed = serve_page(tmp_path / "pages", "127.0.0.2")
    other_server, other = serve_page(tmp_path / "pages", "127.0.0.3")
    site = Site(tmp_path / "site", settings={"BUGSTREAM_ALLOWED_ORIGINS": json.dumps([allowed])})
    site.data_dir.mkdir()
    site.create_user("ada", "admin")
    site.start()
    try:
        results: dict[str, Any] = {}
        for name, origin in (("allowed", allowed), ("other", other)):
            page = browser.new_page()
            page.goto(f"{origin}/app.html?api={site.url}")
            page.wait_for_function("window.ready === true")
            results[name] = page.evaluate(
                "([u, p]) => window.run(u, p)", ["ada", site.passwords["ada"]]
            )
            page.close()
    finally:
        site.stop()
        allowed_server.shutdown()
        other_server.shutdown()
    assert results["allowed"] == {"signedIn": True, "welcomed": True, "event": "Made elsewhere"}
    assert "signedIn" not in results["other"]
    assert "Failed to fetch" in results["other"]["error"]
