"""bugstream.js in headless Chromium, connected through the fault-injecting proxy
(tests/support/faultproxy.py) to a real `bugstream serve`, while bugs are created over REST.

One page lives through a slow link (latency and a bandwidth cap), resets, a stall longer than
its pong timeout and a cut link, in turn. It must show every event its user may see once, in
commit order: the ids it dispatched are exactly the outbox's ids of the user's project after
its welcome, and the frames the server sent it carry no id twice (the client's own
de-duplication hides nothing). After each fault ends it is connected again within a bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.faultproxy import FaultProxy, ProxyThread, proxy_thread
from tests.support.waiting import wait_until_blocking
from tests.web.browser import chromium
from tests.web.server import Site, ok

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

#: Retries every 0.1-1 s, so a restored link is used within a second.
BACKOFF = {"initial": 100, "factor": 2, "maxDelay": 1000, "maxAttempts": 60}
#: From the end of a fault to connected: the longest backoff wait, a handshake, slack.
BACK_WITHIN = 3.0

#: Runs in a document the server itself served (a page Playwright made up would be a "public"
#: page to Chromium, and its Local Network Access checks would block its WebSocket to 127.0.0.1).
SCRIPT = """
import { BugstreamClient } from "/static/bugstream.js";
const received = [], raw = [], states = [];
class CountingSocket extends WebSocket {
  constructor(url) {
    super(url);
    this.addEventListener("message", (message) => {
      const frame = JSON.parse(message.data);
      if (frame.event_id !== undefined) raw.push(frame.event_id);
    });
  }
}
window.start = async (url, token, options) => {
  const client = new BugstreamClient(url, { token, WebSocket: CountingSocket, ...options });
  client.addEventListener("state", (e) => states.push([Date.now() / 1000, e.detail.phase]));
  client.addEventListener("event", (e) => received.push(e.detail.event_id));
  await client.connect();
  window.client = client;
  return client.welcome.latest_event_id;
};
Object.assign(window, { received, raw, states, ready: true });
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def _token(site: Site, username: str) -> str:
    response = httpx.post(
        f"{site.url}/api/v1/auth/token",
        json={"username": username, "password": site.passwords[username]},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_the_js_client_loses_repeats_and_reorders_nothing_through_network_faults(
    browser: Browser, tmp_path: Any
) -> None:
    site = Site(tmp_path / "site")
    site.data_dir.mkdir()
    site.create_user("admin", "admin")
    site.create_user("dana", "developer")
    site.create_user("olga", "developer")
    site.start()
    try:
        with site.api("admin") as admin:
            users = {u["username"]: u["id"] for u in ok(admin.get("/users"))["items"]}
            mine = ok(admin.post("/projects", json={"name": "Dana's"}))
            other = ok(admin.post("/projects", json={"name": "Olga's"}))
            ok(admin.post(f"/projects/{mine['id']}/members", json={"user_id": users["dana"]}))
            ok(admin.post(f"/projects/{other['id']}/members", json={"user_id": users["olga"]}))
        assert (site.data_dir / "bugstream.db").exists()
        with proxy_thread(site.port) as proxy, site.api("dana") as dana, site.api("olga") as olga:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{site.url}/static/bugstream.js")
            page.add_script_tag(content=SCRIPT, type="module")
            page.wait_for_function("window.ready === true")
            options = {
                "backoff": BACKOFF,
                "pingInterval": 500,
                "pongTimeout": 1000,
                "openTimeout": 1500,
            }
            start = page.evaluate(
                "([url, token, options]) => window.start(url, token, options)",
                [f"ws://127.0.0.1:{proxy.port}/ws", _token(site, "dana"), options],
            )
            assert isinstance(start, int)
            written = 0

            def write(count: int) -> None:
                nonlocal written
                for _ in range(count):
                    ok(
                        dana.post(
                            "/bugs", json={"project_id": mine["id"], "title": f"bug {written}"}
                        )
                    )
                    if written % 3 == 0:  # not dana's: must not reach her page
                        ok(
                            olga.post(
                                "/bugs",
                                json={"project_id": other["id"], "title": f"other {written}"},
                            )
                        )
                    written += 1

            ended = _faults(proxy, page, write)

            expected = site.outbox_ids(mine["id"], after=start)
            assert len(expected) == written
            wait_until_blocking(
                lambda: len(page.evaluate("window.received")) >= len(expected),
                30,
                "every event on the page",
            )
            time.sleep(0.3)  # nothing more may come
            received = page.evaluate("window.received")
            raw = page.evaluate("window.raw")
            states = page.evaluate("window.states")
            assert sorted(set(expected) - set(received)) == [], "lost"
            assert received == expected, "duplicated or out of order"
            assert len(raw) == len(set(raw)), "the server sent an event twice"
            assert not errors, errors
            connects = [at for at, phase in states if phase == "connected"]
            assert len(connects) >= 1 + len(ended)
            for fault, moment in ended.items():
                back = min((at - moment for at in connects if at >= moment), default=None)
                assert back is not None and back <= BACK_WITHIN, (fault, back)
            page.close()
    finally:
        site.stop()


def _faults(proxy: ProxyThread, page: Page, write: Callable[[int], None]) -> dict[str, float]:
    """Each fault in turn, with writes during it; the time (epoch s) each one ended."""
    ended: dict[str, float] = {}

    def connected() -> bool:
        return bool(page.evaluate("window.client.state.phase === 'connected'"))

    def set_link(latency: float, bandwidth: int | None) -> Callable[[FaultProxy], None]:
        def apply(p: FaultProxy) -> None:
            p.latency, p.bandwidth = latency, bandwidth

        return apply

    write(10)  # a healthy link
    proxy.call(set_link(0.1, 8_000))
    write(30)
    proxy.call(set_link(0.0, None))
    for n in range(2):
        wait_until_blocking(connected, 10, "connected before a reset")
        proxy.call(FaultProxy.reset_all)
        ended[f"reset {n}"] = time.time()
        write(5)
    wait_until_blocking(connected, 10, "connected before the stall")
    proxy.call(FaultProxy.stall)
    write(10)
    time.sleep(3.0)  # past pingInterval + pongTimeout: the page gives the link up
    assert not connected(), "a stalled link must be given up"
    proxy.call(FaultProxy.resume)
    ended["stall"] = time.time()
    wait_until_blocking(connected, 10, "connected after the stall")
    proxy.call(FaultProxy.cut)
    write(10)
    time.sleep(2.0)
    refused = proxy.call(lambda p: p.refused)
    assert refused >= 1, "the page kept trying while the link was cut"
    proxy.call(FaultProxy.restore)
    ended["cut"] = time.time()
    write(5)
    return ended
