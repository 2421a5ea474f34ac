"""The live board end to end: a real `bugstream serve` process, headless Chromium, two users.

Users are made with `bugstream create-user`, the project and its members over REST as the
admin, then two browser contexts sign in through the board's form: dana (developer) and rex
(reporter). What one does must show on the other's board within a second; stopping the server
(SIGTERM) must show "reconnecting", and after the restart the board must show what changed
while it was away. To make "while it was away" certain, that page's timers run on Playwright's
fake clock, paused from the stop until the changes are made: its reconnect attempt cannot
start before. Another page gives up after two quick attempts (`?reconnectDelay=100&
maxAttempts=2`) and shows "offline" until its "Retry now" button is pressed.

Screenshots go to a temporary directory (or `BUGSTREAM_TEST_ARTIFACTS`). The README's
`docs/screenshots/board.png` is written when it is missing or `BUGSTREAM_UPDATE_SCREENSHOTS=1`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.web.browser import chromium
from tests.web.server import Site, ok

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, ViewportSize, WebSocketRoute

README_SCREENSHOT = Path(__file__).parents[2] / "docs" / "screenshots" / "board.png"
LIVE = 1000  # ms: how soon a change must show on the other board
VIEWPORT: ViewportSize = {"width": 1440, "height": 720}

#: Bugs on the board before the browsers come (title, priority, status, assignee).
SEEDS = [
    ("Password reset email links to a 404 page", "critical", "open", None),
    ("Avatar upload fails for PNG files over 2 MB", "medium", "open", "dana"),
    ("Search results are stale after reindexing", "high", "in_progress", "dana"),
    ("Dashboard takes 8 s to load with 10k bugs", "medium", "in_progress", None),
    ("Typo on the pricing page", "low", "resolved", "dana"),
    ("CSV export drops the last row", "high", "closed", "dana"),
    ("Dark mode forgets its setting after logout", "medium", "reopened", "dana"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@dataclass
class World:
    site: Site
    users: dict[str, int]  # username -> id
    project_id: int


def start_team_site(site: Site) -> tuple[dict[str, int], dict[str, Any]]:
    """Create admin, dana (developer) and rex (reporter), start the server, and make the
    "Web app" project with dana and rex as members: the users' ids by name, and the project."""
    for username, role in (("admin", "admin"), ("dana", "developer"), ("rex", "reporter")):
        site.create_user(username, role)
    site.start()
    try:
        with site.api("admin") as admin:
            users = {u["username"]: u["id"] for u in ok(admin.get("/users"))["items"]}
            project: dict[str, Any] = ok(admin.post("/projects", json={"name": "Web app"}))
            for name in ("dana", "rex"):
                ok(admin.post(f"/projects/{project['id']}/members", json={"user_id": users[name]}))
    except BaseException:
        site.stop()
        raise
    return users, project


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A running server with admin, dana (developer), rex (reporter) and the "Web app"
    project they are members of, with a few bugs."""
    site = Site(tmp_path_factory.mktemp("board-site"))
    users, project = start_team_site(site)
    try:
        with site.api("dana") as dana:
            for title, priority, status, assignee in SEEDS:
                body: dict[str, Any] = {
                    "project_id": project["id"],
                    "title": title,
                    "priority": priority,
                }
                if assignee:
                    body["assignee_id"] = users[assignee]
                bug = ok(dana.post("/bugs", json=body))
                if status != "open":
                    ok(dana.post(f"/bugs/{bug['id']}/status", json={"status": status}))
        yield World(site, users, project["id"])
    finally:
        site.stop()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("BUGSTREAM_TEST_ARTIFACTS")
    path = Path(configured) if configured else tmp_path_factory.mktemp("board-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Boards:
    """The board pages a test opens, each in its own browser context (its own storage)."""

    browser: Browser
    site: Site
    pages: list[Page] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, username: str, *, query: str = "", fake_clock: bool = False) -> Page:
        """A page with `username` signed in through the form, the project's bugs loaded.
        `query`: the board's options (`?reconnectDelay=...`)."""
        from playwright.sync_api import expect

        context = self.browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{username}: {error}"))
        self.pages.append(page)
        if fake_clock:
            page.clock.install()  # time flows as usual until the test pauses it
        page.goto(f"{self.site.url}/{query}")
        page.fill("#login-form input[name=username]", username)
        page.fill("#login-form input[name=password]", self.site.passwords[username])
        page.click("#login-form button[type=submit]")
        expect(page.locator("#connection")).to_have_text("connected", timeout=10_000)
        expect(page.locator("#whoami")).to_contain_text(username)
        expect(page.locator("#project-select option:checked")).to_have_text("Web app")
        expect(page.locator(".card").first).to_be_visible(timeout=5_000)
        return page


@pytest.fixture
def boards(browser: Browser, world: World) -> Iterator[Boards]:
    """Opens board pages; closes them afterwards. An uncaught error in any fails the test."""
    boards = Boards(browser, world.site)
    yield boards
    for page in boards.pages:
        page.context.close()
    assert not boards.errors, boards.errors


def card(page: Page, status: str, bug_id: int | str) -> Locator:
    return page.locator(f'.column[data-status="{status}"] .card[data-bug-id="{bug_id}"]')


def unread(page: Page) -> int:
    return int(page.locator("#unread-count").inner_text())


def test_two_users_see_each_others_changes_live(boards: Boards, artifacts: Path) -> None:
    from playwright.sync_api import expect

    dana = boards.open("dana")
    rex = boards.open("rex")
    rex_unread = unread(rex)

    # rex (a reporter) creates a bug: it appears on dana's board. Its title is text, not HTML.
    title = "Checkout shows <b>NaN</b> as the total"
    rex.fill("#new-bug-form input[name=title]", title)
    rex.select_option("#new-bug-form select[name=priority]", "high")
    rex.click("#new-bug-form button[type=submit]")
    created = dana.locator('.column[data-status="open"] .card', has_text=title)
    expect(created).to_be_visible(timeout=LIVE)
    bug_id = created.get_attribute("data-bug-id")
    assert bug_id is not None
    expect(created.locator(".card-title")).to_have_text(title)
    assert created.locator("b").count() == 0
    expect(card(rex, "open", bug_id)).to_be_visible(timeout=LIVE)

    # dana moves it to "in progress": it moves on rex's board, and rex (its reporter) is told.
    created.locator("button").click()
    expect(dana.locator("#detail-title")).to_have_text(title)
    dana.select_option("#detail-status", "in_progress")
    expect(card(rex, "in_progress", bug_id)).to_be_visible(timeout=LIVE)
    expect(card(rex, "open", bug_id)).to_have_count(0)
    expect(rex.locator("#unread-count")).to_have_text(str(rex_unread + 1), timeout=LIVE)

    # dana assigns it to rex: rex sees the assignee and gets a notification.
    dana.select_option("#detail-assignee", label="rex")
    expect(card(rex, "in_progress", bug_id).locator(".card-meta")).to_have_text(
        re.compile(r"rex$"), timeout=LIVE
    )
    expect(rex.locator("#unread-count")).to_have_text(str(rex_unread + 2), timeout=LIVE)
    rex.click("#notifications-toggle")
    assigned = rex.locator(
        "#notification-list .notification", has_text=f"dana assigned bug #{bug_id}"
    )
    expect(assigned).to_have_class(re.compile(r"\bunread\b"))
    expect(assigned).to_contain_text("to you")
    rex.screenshot(path=str(artifacts / "notifications.png"))
    rex.click("#notifications-toggle")

    # Comments show on the other's detail panel, both ways; rex is notified of dana's.
    card(rex, "in_progress", bug_id).locator("button").click()
    expect(rex.locator("#detail-title")).to_have_text(title)
    expect(rex.locator("#detail-assignee option:checked")).to_have_text("rex")
    dana.fill("#comment-form textarea", "Reproduced on Safari 17: the total is computed too early.")
    dana.click("#comment-form button[type=submit]")
    expect(rex.locator("#comment-list .comment", has_text="Reproduced on Safari 17")).to_be_visible(
        timeout=LIVE
    )
    expect(rex.locator("#comment-count")).to_have_text("1")
    expect(rex.locator("#unread-count")).to_have_text(str(rex_unread + 3), timeout=LIVE)
    rex.fill("#comment-form textarea", "Thanks! It happens on iOS too.")
    rex.click("#comment-form button[type=submit]")
    expect(dana.locator("#comment-list .comment", has_text="iOS too")).to_be_visible(timeout=LIVE)
    expect(dana.locator("#comment-count")).to_have_text("2")

    # dana renames it: the new title shows on rex's card and panel.
    renamed = "Checkout total shows NaN on Safari"
    dana.click("#edit-title")
    dana.fill("#title-form input[name=title]", renamed)
    dana.click("#title-form button[type=submit]")
    expect(rex.locator("#detail-title")).to_have_text(renamed, timeout=LIVE)
    expect(card(rex, "in_progress", bug_id).locator(".card-title")).to_have_text(renamed)

    # rex reads the assignment (opening its bug), then marks everything read.
    rex.click("#notifications-toggle")
    assigned.locator("button").click()
    expect(assigned).not_to_have_class(re.compile(r"\bunread\b"))
    expect(rex.locator("#unread-count")).to_have_text(str(rex_unread + 2))
    rex.click("#mark-all-read")
    expect(rex.locator("#unread-count")).to_have_text("0")
    expect(rex.locator("#notification-list .notification.unread")).to_have_count(0)
    rex.click("#notifications-toggle")

    # Screenshots, once the highlight of the last changes has faded.
    for page in (dana, rex):
        expect(page.locator(".card.flash")).to_have_count(0, timeout=5_000)
    dana.screenshot(path=str(artifacts / "board-dana.png"))
    rex.screenshot(path=str(artifacts / "board-rex.png"))
    if not README_SCREENSHOT.exists() or os.environ.get("BUGSTREAM_UPDATE_SCREENSHOTS") == "1":
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifacts / "board-dana.png", README_SCREENSHOT)


def test_restart_shows_reconnecting_then_the_missed_changes(
    boards: Boards, world: World, artifacts: Path
) -> None:
    from playwright.sync_api import Request, expect

    site, rex_id, project_id = world.site, world.users["rex"], world.project_id
    with site.api("dana") as api:
        bug = ok(
            api.post(
                "/bugs",
                json={
                    "project_id": project_id,
                    "title": "Sessions are lost when the server restarts",
                    "assignee_id": rex_id,
                },
            )
        )
    rex = boards.open("rex", fake_clock=True)
    card(rex, "open", bug["id"]).locator("button").click()
    expect(rex.locator("#detail-title")).to_have_text(bug["title"])
    rex_unread = unread(rex)
    # dana's board gives up quickly: two attempts, 100 then 200 ms after the drop.
    dana = boards.open("dana", query="?reconnectDelay=100&maxAttempts=2&jitter=0")

    # Freeze the page's timers: the reconnect attempt waits until the test lets time go on.
    rex.clock.pause_at(rex.evaluate("Date.now()") + 10)
    site.stop()
    indicator = rex.locator("#connection")
    expect(indicator).to_have_text(re.compile(r"^reconnecting, attempt 1\b"), timeout=5_000)
    expect(indicator).to_have_attribute("data-phase", "reconnecting")
    rex.screenshot(path=str(artifacts / "reconnecting.png"))
    expect(dana.locator("#connection")).to_have_text("offline", timeout=5_000)
    expect(dana.locator("#retry")).to_be_visible()

    # Changes made while rex's board is disconnected.
    site.start()
    with site.api("dana") as api:
        ok(api.post(f"/bugs/{bug['id']}/status", json={"status": "resolved"}))
        ok(
            api.post(
                f"/bugs/{bug['id']}/comments", json={"content": "Sessions now live in the DB."}
            )
        )
        missed = ok(
            api.post(
                "/bugs", json={"project_id": project_id, "title": "Created while you were away"}
            )
        )
    # The board has not seen them: it is still waiting for its first attempt.
    expect(indicator).to_have_text(re.compile(r"^reconnecting, attempt 1\b"))
    expect(card(rex, "open", bug["id"])).to_be_visible()

    refetches: list[str] = []

    def on_request(request: Request) -> None:
        if "/api/v1/bugs" in request.url:
            refetches.append(request.url)

    rex.on("request", on_request)
    rex.clock.resume()
    expect(indicator).to_have_text("connected", timeout=10_000)
    expect(card(rex, "resolved", bug["id"])).to_be_visible(timeout=LIVE)
    expect(card(rex, "open", missed["id"])).to_be_visible(timeout=LIVE)
    expect(
        rex.locator("#comment-list .comment", has_text="Sessions now live in the DB.")
    ).to_be_visible(timeout=LIVE)
    # rex, the assignee, was told of the status change and of the comment.
    expect(rex.locator("#unread-count")).to_have_text(str(rex_unread + 2), timeout=LIVE)
    # The missed changes came by resuming the stream, not by reloading the board.
    assert refetches == []

    # dana's board stays offline until asked; then it catches up the same way.
    expect(dana.locator("#connection")).to_have_text("offline")
    expect(card(dana, "open", bug["id"])).to_be_visible()
    dana.click("#retry")
    expect(dana.locator("#connection")).to_have_text("connected", timeout=5_000)
    expect(card(dana, "resolved", bug["id"])).to_be_visible(timeout=LIVE)
    expect(card(dana, "open", missed["id"])).to_be_visible(timeout=LIVE)
    expect(dana.locator("#retry")).to_be_hidden()
    expect(rex.locator(".card.flash")).to_have_count(0, timeout=5_000)
    rex.screenshot(path=str(artifacts / "reconnected.png"))


def test_the_board_recovers_by_itself_after_a_hard_kill(boards: Boards, world: World) -> None:
    """Issue 13.4: a board left open never gives up. It stayed "offline" after its five
    attempts until someone pressed "Retry now"; now it retries past them, and is back once
    the server is."""
    from playwright.sync_api import expect

    dana = boards.open("dana", query="?reconnectDelay=100&maxDelay=300&jitter=0")
    world.site.kill()
    indicator = dana.locator("#connection")
    expect(indicator).to_have_text(
        re.compile(r"^reconnecting, attempt ([6-9]|\d\d)"), timeout=15_000
    )
    world.site.start()
    expect(indicator).to_have_text("connected", timeout=10_000)
    expect(dana.locator("#retry")).to_be_hidden()


def test_the_board_loads_over_rest_when_the_websocket_is_refused(
    browser: Browser, world: World
) -> None:
    """Issue 13.4: behind a proxy that refuses WebSockets the board stayed empty (it loaded
    only after the first welcome); now it shows the project from REST and keeps retrying."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.route_web_socket(re.compile(r".*/ws.*"), lambda ws: ws.close(code=1008))
        page.goto(f"{world.site.url}/?reconnectDelay=200&jitter=0")
        page.fill("#login-form input[name=username]", "dana")
        page.fill("#login-form input[name=password]", world.site.passwords["dana"])
        page.click("#login-form button[type=submit]")
        expect(page.locator("#project-select option:checked")).to_have_text("Web app")
        expect(page.locator(".card").first).to_be_visible(timeout=5_000)
        expect(page.locator("#connection")).not_to_have_text("connected")
    finally:
        context.close()


def test_the_board_works_over_the_sse_fallback_when_websockets_fail(
    boards: Boards, browser: Browser, world: World
) -> None:
    """Issue 14.3: where every WebSocket fails (here Chromium's own sockets are cut by the
    page's router before they reach the server), the JS client switches to
    `GET /api/v1/events/stream` by itself: the board connects, shows what others do live, and
    its own commands (filing a bug) go over `POST /api/v1/events/stream/{id}`."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: boards.errors.append(f"fallback: {error}"))
        sockets: list[str] = []
        streams: list[str] = []

        def cut(ws: WebSocketRoute) -> None:
            sockets.append(ws.url)
            ws.close()

        page.route_web_socket(re.compile(r".*/ws.*"), cut)
        page.on(
            "request",
            lambda r: streams.append(r.method) if "/api/v1/events/stream" in r.url else None,
        )
        page.goto(f"{world.site.url}/?reconnectDelay=200&jitter=0")
        page.fill("#login-form input[name=username]", "dana")
        page.fill("#login-form input[name=password]", world.site.passwords["dana"])
        page.click("#login-form button[type=submit]")
        expect(page.locator("#connection")).to_have_text("connected", timeout=10_000)
        assert len(sockets) >= 2 and "GET" in streams  # two WebSockets failed, then SSE

        rex = boards.open("rex")
        title = "Filed while dana is on the fallback"
        rex.fill("#new-bug-form input[name=title]", title)
        rex.click("#new-bug-form button[type=submit]")
        seen = page.locator('.column[data-status="open"] .card', has_text=title)
        expect(seen).to_be_visible(timeout=LIVE)

        own = "Filed over the fallback"
        page.fill("#new-bug-form input[name=title]", own)
        page.click("#new-bug-form button[type=submit]")
        expect(rex.locator('.column[data-status="open"] .card', has_text=own)).to_be_visible(
            timeout=LIVE
        )
        expect(page.locator('.column[data-status="open"] .card', has_text=own)).to_be_visible()
        assert "POST" in streams  # the command went as a message on the stream
    finally:
        context.close()


def test_the_board_shows_who_is_online_and_who_else_views_the_open_bug(boards: Boards) -> None:
    from playwright.sync_api import expect

    dana = boards.open("dana")
    online = dana.locator("#online-list .online-user")
    expect(online).to_have_text(["dana"])
    rex = boards.open("rex")
    expect(online).to_have_text(["dana", "rex"], timeout=LIVE)
    expect(rex.locator("#online-list .online-user")).to_have_text(["dana", "rex"])

    # Both open the same bug: each sees the other viewing it, and not themselves.
    first = dana.locator('.column[data-status="open"] .card').first
    bug_id = first.get_attribute("data-bug-id")
    first.locator("button").click()
    expect(dana.locator("#detail-viewers")).to_be_hidden()
    card(rex, "open", str(bug_id)).locator("button").click()
    expect(dana.locator("#detail-viewers")).to_have_text("Also viewing: rex", timeout=LIVE)
    expect(rex.locator("#detail-viewers")).to_have_text("Also viewing: dana", timeout=LIVE)

    # rex closes the panel, then the board: he stops viewing, then goes offline.
    rex.click("#detail-close")
    expect(dana.locator("#detail-viewers")).to_be_hidden(timeout=LIVE)
    rex.context.close()
    boards.pages.remove(rex)
    expect(online).to_have_text(["dana"], timeout=LIVE)
