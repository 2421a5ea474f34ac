"""bugstream.js in a real browser (headless Chromium), with a fake clock and fake sockets.

The page loads the module as the server ships it; tests/web/harness.js plays the server
through a fake WebSocket and moves the client's clock. Each test runs one scenario in the page
and checks what the client did: reconnect delays and attempts, close codes, resume, commands,
heartbeats and token refresh.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.web.browser import chromium

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

ORIGIN = "http://bugstream.test"
HARNESS = Path(__file__).with_name("harness.js")
PAGE = (
    "<!doctype html><title>bugstream.js tests</title><script type=module>"
    "import * as harness from '/harness.js'; import * as bs from '/static/bugstream.js';"
    "Object.assign(window, {harness, bs}); window.ready = true;</script>"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def _serve(route: Route) -> None:
    path = route.request.url.removeprefix(ORIGIN)
    if path == "/":
        route.fulfill(body=PAGE, content_type="text/html")
    elif path == "/harness.js":
        route.fulfill(body=HARNESS.read_text(), content_type="text/javascript")
    elif path == "/static/bugstream.js":
        source = files("bugstream.web").joinpath("bugstream.js").read_text(encoding="utf-8")
        route.fulfill(body=source, content_type="text/javascript")
    else:
        route.fulfill(status=404, body="not found")


@pytest.fixture(scope="module")
def tab(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.route(f"{ORIGIN}/**", _serve)
    yield page, errors
    page.close()


@pytest.fixture
def page(tab: tuple[Page, list[str]]) -> Iterator[Page]:
    """The test page, freshly loaded; uncaught errors in it fail the test."""
    page, errors = tab
    errors.clear()
    page.goto(f"{ORIGIN}/")
    page.wait_for_function("window.ready === true")
    yield page
    assert not errors, errors


def run(page: Page, body: str) -> Any:
    """Run a scenario (the body of an async function, with `harness`, `bs` in scope)."""
    return page.evaluate(f"async () => {{ const {{ world, outcome, flush }} = harness;\n{body}\n}}")


def test_backoff_waits_2_4_8_16_32_seconds_then_gives_up(page: Page) -> None:
    result = run(
        page,
        """
        const w = world();
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock, { latest_event_id: 10 });
        w.sockets[0].drop(1001, "server shutting down");
        const attempts = [];
        for (let n = 1; n <= 5; n += 1) {
          const state = w.state();
          const before = w.sockets.length;
          await w.clock.advance(state.nextDelay - 1);
          const early = w.sockets.length - before;
          await w.clock.advance(1);
          attempts.push({
            phase: state.phase, attempt: state.attempt, delay: state.nextDelay, early,
            opened: w.sockets.length - before, params: w.last().params,
            text: bs.describeState(state),
          });
          w.last().drop();
        }
        await w.clock.advance(3600_000);
        const s = w.state();
        return { attempts, sockets: w.sockets.length, phase: s.phase, error: s.error?.name,
                 message: s.error?.message };
        """,
    )
    attempts = result["attempts"]
    assert [a["delay"] for a in attempts] == [2000, 4000, 8000, 16000, 32000]
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4, 5]
    assert {a["phase"] for a in attempts} == {"reconnecting"}
    assert attempts[1]["text"] == "reconnecting, attempt 2 of 5"
    # No attempt before its delay is over; exactly one when it is.
    assert [a["early"] for a in attempts] == [0] * 5
    assert [a["opened"] for a in attempts] == [1] * 5
    # Every attempt resumes after the last event seen, with the token in the query.
    assert all(a["params"] == {"token": "token-1", "last_event_id": "10"} for a in attempts)
    assert result["sockets"] == 6  # the first connection and five attempts, no more
    assert result["phase"] == "offline"
    assert result["error"] == "ReconnectFailed"
    assert "after 5 attempts" in result["message"]


def test_full_jitter_draws_each_delay_between_zero_and_its_bound(page: Page) -> None:
    delays = run(
        page,
        """
        const w = world({}, [0.25, 0.5, 0.75, 0, 1]);
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock);
        w.sockets[0].drop();
        const delays = [];
        for (let n = 1; n <= 5; n += 1) {
          delays.push(w.state().nextDelay);
          await w.clock.advance(w.state().nextDelay);
          w.last().drop();
        }
        return delays;
        """,
    )
    assert delays == [500, 2000, 6000, 0, 32000]


def test_auto_transport_falls_back_to_sse_after_websockets_fail_before_any_welcome(
    page: Page,
) -> None:
    """Issue 14.3: two connections in a row fail before a welcome, none ever got through:
    the next one is the SSE stream, at once, with the token in a header, not the URL."""
    result = run(
        page,
        """
        const fetched = [];
        const fetch = (url, init) => {
          fetched.push([String(url), init.headers.Authorization ?? null]);
          return new Promise(() => {});  // the stream stays open
        };
        const w = world({
          transport: "auto", fallbackAfter: 2, fetch,
          backoff: { initial: 100, jitter: false },
        });
        w.connect();
        await flush();
        const before = w.client.transport;
        w.sockets[0].drop();
        await w.clock.advance(100);
        w.last().drop();
        await flush();
        return { before, after: w.client.transport, sockets: w.sockets.length, fetched };
        """,
    )
    assert result == {
        "before": "websocket",
        "after": "sse",
        "sockets": 2,
        "fetched": [["http://bugstream.test/api/v1/events/stream", "Bearer token-1"]],
    }


def test_auto_transport_stays_on_websockets_that_once_worked(page: Page) -> None:
    """A WebSocket that was welcomed and then keeps failing is a network problem, not a
    blocked protocol: the client goes on retrying WebSockets."""
    result = run(
        page,
        """
        const fetched = [];
        const w = world({
          transport: "auto", fallbackAfter: 2,
          fetch: (url) => { fetched.push(String(url)); return new Promise(() => {}); },
          backoff: { initial: 100, jitter: false },
        });
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock);
        w.sockets[0].drop();
        for (let i = 0; i < 3; i += 1) {
          await w.clock.advance(100 * 2 ** i);
          w.last().drop();
        }
        await flush();
        return { transport: w.client.transport, sockets: w.sockets.length, fetched };
        """,
    )
    assert result == {"transport": "websocket", "sockets": 4, "fetched": []}


def test_backoff_is_configurable(page: Page) -> None:
    result = run(
        page,
        """
        const w = world({ backoff: { initial: 100, factor: 3, maxAttempts: 2, jitter: false } });
        w.connect();
        await flush();
        w.sockets[0].drop();  // the first connection fails: attempts start at once
        const delays = [w.state().nextDelay];
        await w.clock.advance(100);
        w.last().drop();
        delays.push(w.state().nextDelay);
        await w.clock.advance(300);
        w.last().drop();
        return { delays, phase: w.state().phase, max: w.state().maxAttempts };
        """,
    )
    assert result == {"delays": [100, 300], "phase": "offline", "max": 2}


def test_a_welcome_resets_the_attempt_count(page: Page) -> None:
    result = run(
        page,
        """
        const w = world();
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock);
        w.sockets[0].drop();
        await w.clock.advance(2000);
        w.last().drop();
        const second = { attempt: w.state().attempt, delay: w.state().nextDelay };
        await w.clock.advance(4000);
        w.last().welcome(w.clock);
        const back = w.state().phase;
        w.last().drop(4100, "heartbeat timeout");
        return { second, back, after: { attempt: w.state().attempt, delay: w.state().nextDelay } };
        """,
    )
    assert result["second"] == {"attempt": 2, "delay": 4000}
    assert result["back"] == "connected"
    assert result["after"] == {"attempt": 1, "delay": 2000}


@pytest.mark.parametrize("code", [4001, 4002, 4003, 4004, 4050, 1008])
def test_a_do_not_reconnect_close_code_goes_offline_at_once(page: Page, code: int) -> None:
    result = run(
        page,
        f"""
        const w = world();
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock);
        w.sockets[0].receive({{ type: "error",
                                payload: {{ code: "forbidden", message: "account suspended" }} }});
        w.sockets[0].drop({code}, "bye");
        await w.clock.advance(3600_000);
        const s = w.state();
        return {{ sockets: w.sockets.length, phase: s.phase, closeCode: s.closeCode,
                  error: s.error?.name, code: s.error?.code, message: s.error?.message }};
        """,
    )
    assert result["sockets"] == 1
    assert result["phase"] == "offline"
    assert result["closeCode"] == code
    assert result["error"] == "ConnectionRejected"
    if code == 4002:
        assert result["code"] == "token_expired"
        assert "tokenProvider" in result["message"]
    else:
        assert "account suspended" in result["message"]


@pytest.mark.parametrize("code", [1001, 1006, 1011, 4100, 4101, 4102, 4103])
def test_other_close_codes_reconnect(page: Page, code: int) -> None:
    result = run(
        page,
        f"""
        const w = world();
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock);
        w.sockets[0].drop({code});
        const state = w.state();
        await w.clock.advance(2000);
        return {{ phase: state.phase, attempt: state.attempt, sockets: w.sockets.length }};
        """,
    )
    assert result == {"phase": "reconnecting", "attempt": 1, "sockets": 2}


def test_refused_first_connection_rejects_connect(page: Page) -> None:
    result = run(
        page,
        """
        const w = world();
        const connected = outcome(w.client.connect());
        await flush();
        w.sockets[0].receive({ type: "error",
                               payload: { code: "invalid_token", message: "bad signature" } });
        w.sockets[0].drop(4001, "invalid token");
        await flush();
        return connected;
        """,
    )
    assert result["ok"] is False
    assert result["name"] == "ConnectionRejected"
    assert result["closeCode"] == 4001
    assert "bad signature" in result["message"]


def test_a_token_provider_gets_one_retry_after_an_auth_close_code(page: Page) -> None:
    result = run(
        page,
        """
        let issued = 1;
        const w = world({ tokenProvider: () => `token-${++issued}` });
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock);
        w.sockets[0].drop(4002, "token expired");
        await flush();  // no backoff wait: the new token is tried at once
        const retried = { sockets: w.sockets.length, token: w.last().params.token };
        w.last().drop(4001, "invalid token");  // refused again before any welcome
        await w.clock.advance(3600_000);
        return { retried, sockets: w.sockets.length, phase: w.state().phase,
                 error: w.state().error?.name };
        """,
    )
    assert result["retried"] == {"sockets": 2, "token": "token-2"}
    assert result["sockets"] == 2
    assert result["phase"] == "offline"
    assert result["error"] == "ConnectionRejected"


def test_a_provider_without_a_new_token_does_not_retry(page: Page) -> None:
    result = run(
        page,
        """
        const w = world({ tokenProvider: () => "token-1" });
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock);
        w.sockets[0].drop(4002, "token expired");
        await w.clock.advance(60_000);
        return { sockets: w.sockets.length, phase: w.state().phase };
        """,
    )
    assert result == {"sockets": 1, "phase": "offline"}


def test_resume_delivers_each_event_once_in_order(page: Page) -> None:
    result = run(
        page,
        """
        const w = world();
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock, { latest_event_id: 5 });
        w.sockets[0].event(6);
        w.sockets[0].event(7);
        w.sockets[0].drop(1001);
        await w.clock.advance(2000);
        const resumeFrom = w.last().params.last_event_id;
        w.last().welcome(w.clock, { latest_event_id: 9 });
        for (const id of [6, 7, 8, 9, 8]) w.last().event(id);  // replay overlaps; a duplicate
        return { resumeFrom, events: w.events, last: w.client.lastEventId };
        """,
    )
    assert result == {"resumeFrom": "7", "events": [6, 7, 8, 9], "last": 9}


def test_resync_required_reaches_the_app_and_moves_the_resume_point(page: Page) -> None:
    result = run(
        page,
        """
        const w = world({ lastEventId: 5 });
        w.connect();
        await flush();
        const first = w.sockets[0].params.last_event_id;
        w.sockets[0].welcome(w.clock, { latest_event_id: 60 });
        w.sockets[0].receive({ type: "resync_required", payload: {
          code: "resync_required", message: "refetch", last_event_id: 5,
          oldest_event_id: 50, latest_event_id: 60 } });
        w.sockets[0].drop();
        await w.clock.advance(2000);
        return { first, resyncs: w.resyncs, next: w.last().params.last_event_id };
        """,
    )
    assert result["first"] == "5"
    assert [r["oldest_event_id"] for r in result["resyncs"]] == [50]
    assert result["next"] == "60"


def test_commands_resolve_with_the_ack_and_reject_with_the_error(page: Page) -> None:
    result = run(
        page,
        """
        const w = world();
        w.connect();
        await flush();
        const ws = w.sockets[0];
        ws.welcome(w.clock);
        const created = outcome(
          w.client.send("bug_report.create", { project_id: 1, title: "Crash" }));
        const message = ws.sent[0];
        ws.receive({ type: "ack", payload: { request_id: message.request_id,
                     command: "bug_report.create", result: { id: 7, title: "Crash" } } });
        const refused = outcome(w.client.send("bug_report.create", { project_id: 1, title: "" }));
        ws.receive({ type: "error", payload: { code: "validation_failed", message: "invalid input",
                     request_id: ws.sent[1].request_id,
                     fields: [{ field: "title", rule: "min_length", message: "too short" }] } });
        ws.receive({ type: "error", payload: { code: "rate_limited", message: "slow down" } });
        const slow = outcome(w.client.send("comment.create", { bug_report_id: 7, content: "x" }));
        const quick = outcome(w.client.send("comment.create", { bug_report_id: 7, content: "y" },
                                            { timeout: 500 }));
        await w.clock.advance(500);
        const quickAt500 = { ...quick };
        await w.clock.advance(9500);
        await flush();
        return { message, created, refused, slow, quickAt500, serverErrors: w.serverErrors,
                 ids: ws.sent.map((m) => m.request_id) };
        """,
    )
    message = result["message"]
    assert message["type"] == "bug_report.create"
    assert message["payload"] == {"project_id": 1, "title": "Crash"}
    assert isinstance(message["request_id"], str) and message["request_id"]
    assert len(set(result["ids"])) == 4  # every request has its own id
    assert result["created"] == {"settled": True, "ok": True, "value": {"id": 7, "title": "Crash"}}
    refused = result["refused"]
    assert (refused["name"], refused["code"], refused["message"]) == (
        "CommandError",
        "validation_failed",
        "invalid input",
    )
    assert refused["fields"][0]["field"] == "title"
    # An error that answers no command goes to the application, and fails nothing.
    assert [e["code"] for e in result["serverErrors"]] == ["rate_limited"]
    assert result["quickAt500"]["name"] == "CommandTimeout"
    assert result["slow"]["name"] == "CommandTimeout"  # the default: 10 s


def test_commands_wait_for_the_connection_and_fail_if_it_drops_unanswered(page: Page) -> None:
    result = run(
        page,
        """
        const w = world();
        w.connect();
        await flush();
        const early = outcome(w.client.send("bug_report.create", { project_id: 1, title: "A" }));
        const sentBeforeWelcome = w.sockets[0].sent.length;
        w.sockets[0].welcome(w.clock);
        const sentAfterWelcome = w.sockets[0].sent.map((m) => m.type);
        w.sockets[0].drop(1001);
        await flush();
        const lost = { ...early };
        const queued = outcome(w.client.send("bug_report.create", { project_id: 1, title: "B" }));
        await w.clock.advance(2000);
        const ws = w.last();
        ws.welcome(w.clock);
        const resent = ws.sent.map((m) => m.payload.title);
        ws.receive({ type: "ack",
                     payload: { request_id: ws.sent[0].request_id, result: { id: 2 } } });
        await flush();
        return { sentBeforeWelcome, sentAfterWelcome, lost, queued, resent };
        """,
    )
    assert result["sentBeforeWelcome"] == 0
    assert result["sentAfterWelcome"] == ["bug_report.create"]
    assert result["lost"]["name"] == "ConnectionLost"
    assert result["resent"] == ["B"]
    assert result["queued"] == {"settled": True, "ok": True, "value": {"id": 2}}


def test_pings_every_25_seconds_and_drops_a_connection_that_stays_silent(page: Page) -> None:
    result = run(
        page,
        """
        const w = world();
        w.connect();
        await flush();
        const ws = w.sockets[0];
        ws.welcome(w.clock);
        await w.clock.advance(24_999);
        const before = ws.sent.length;
        await w.clock.advance(1);
        const first = ws.sent.map((m) => m.type);
        ws.receive({ type: "pong", payload: {} });
        await w.clock.advance(10_000);
        const afterPong = w.state().phase;
        await w.clock.advance(15_000);  // the next ping, left unanswered
        const pings = ws.sent.filter((m) => m.type === "ping").length;
        await w.clock.advance(10_000);
        return { before, first, afterPong, pings, closed: ws.closedWith !== null,
                 phase: w.state().phase, attempt: w.state().attempt };
        """,
    )
    assert result["before"] == 0
    assert result["first"] == ["ping"]
    assert result["afterPong"] == "connected"
    assert result["pings"] == 2
    assert result["closed"] is True
    assert (result["phase"], result["attempt"]) == ("reconnecting", 1)


def test_a_pong_timeout_longer_than_the_ping_interval_still_expires(page: Page) -> None:
    """The deadline counts from the first unanswered ping, not from the latest one: with
    pings every 0.5 s and a 1 s pong timeout, a silent link is given up 1.5 s in."""
    result = run(
        page,
        """
        const w = world({ pingInterval: 500, pongTimeout: 1000 });
        w.connect();
        await flush();
        const ws = w.sockets[0];
        ws.welcome(w.clock);
        await w.clock.advance(1_499);
        const before = ws.closedWith !== null;
        await w.clock.advance(1);
        return { before, closed: ws.closedWith !== null, phase: w.state().phase,
                 pings: ws.sent.filter((m) => m.type === "ping").length };
        """,
    )
    assert result["before"] is False
    assert result["closed"] is True
    assert result["phase"] == "reconnecting"
    assert result["pings"] == 2


def test_a_subscription_is_renewed_after_a_reconnect_and_filters_meanwhile(page: Page) -> None:
    """Issue 13.3: the server forgets a subscription with its connection; the client sends it
    again right after the welcome, and drops events outside it until the server has it."""
    result = run(
        page,
        """
        const w = world({ backoff: { initial: 100, jitter: false } });
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock);
        const subscribing = outcome(w.client.subscribe({ projects: [3], bugReports: [42] }));
        await flush();
        const first = w.sockets[0].sent.at(-1);
        w.sockets[0].receive({ type: "ack", payload: { request_id: first.request_id,
          command: "subscribe", result: { all: false, projects: [3], bug_reports: [42] } } });
        await flush();
        w.sockets[0].drop();
        await w.clock.advance(100);
        const second = w.last();
        second.welcome(w.clock);
        await flush();
        const renewed = second.sent.map((m) => ({ type: m.type, payload: m.payload }));
        // Before the server acknowledges, a replay brings events of other projects too.
        second.event(5, "bug_report", "created", { id: 7, project_id: 9 });
        second.event(6, "bug_report", "created", { id: 8, project_id: 3 });
        second.event(7, "comment", "created", { id: 1, bug_report_id: 42, project_id: 9 });
        second.event(8, "notification", "bug_assigned", { id: 2, user_id: 1 });
        second.event(9, "project", "updated", { id: 9 });
        await flush();
        return { subscribed: subscribing.ok, renewed, events: w.events,
                 lastEventId: w.client.lastEventId,
                 projects: [...w.client.subscription.projects] };
        """,
    )
    assert result["subscribed"] is True
    assert result["renewed"] == [
        {"type": "subscribe", "payload": {"projects": [3], "bug_reports": [42]}}
    ]
    assert result["events"] == [6, 7, 8]  # project 9's bug and project update filtered out
    assert result["lastEventId"] == 9  # but counted as received: a resume starts after them
    assert result["projects"] == [3]


def test_an_oversized_command_is_refused_at_once_by_the_welcome_limit(page: Page) -> None:
    """Issue 13.6: the server's answer to an oversized message carries no request id, so
    the command waited for its timeout; the client checks limits.max_message_bytes first."""
    result = run(
        page,
        """
        const w = world();
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock, { limits: { max_message_bytes: 200 } });
        await flush();
        const big = outcome(w.client.send("bug_report.create", { title: "x".repeat(300) }));
        await flush();
        const small = outcome(w.client.send("bug_report.create", { title: "fits" }));
        await flush();
        return { big, sent: w.sockets[0].sent.map((m) => m.payload.title) };
        """,
    )
    assert result["big"]["settled"] is True
    assert result["big"]["ok"] is False
    assert result["big"]["code"] == "message_too_large"
    assert result["sent"] == ["fits"]  # the big one never went out; the next one did


def test_with_a_ticket_provider_the_token_never_goes_in_the_url(page: Page) -> None:
    """Issue 13.7: each connection asks for a fresh single-use ticket; `?token=` is gone."""
    result = run(
        page,
        """
        let n = 0;
        const w = world({ ticketProvider: async () => `ticket-${++n}`,
                          backoff: { initial: 100, jitter: false } });
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock);
        w.sockets[0].drop();
        await w.clock.advance(100);
        return w.sockets.map((s) => s.params);
        """,
    )
    assert result == [{"ticket": "ticket-1"}, {"ticket": "ticket-2", "last_event_id": "0"}]


def test_retrying_forever_and_waking_on_online_focus_or_visibility(page: Page) -> None:
    """Issue 13.4: maxAttempts Infinity never gives up (waits capped by maxDelay); `online`,
    `focus` or `visibilitychange` make a waiting client try at once, and one that gave up
    after its attempts try again; one refused for good (4003) stays offline."""
    result = run(
        page,
        """
        const target = new EventTarget();
        const w = world({ wakeTarget: target,
                          backoff: { initial: 100, maxDelay: 400, maxAttempts: Infinity,
                                     jitter: false } });
        w.connect();
        await flush();
        for (let i = 0; i < 8; i += 1) {
          w.last().drop();
          await w.clock.advance(400);
        }
        const afterEight = { sockets: w.sockets.length, text: bs.describeState(w.state()) };
        w.last().drop();  // now waiting up to 400 ms for attempt 9
        await flush();
        const before = w.sockets.length;
        target.dispatchEvent(new Event("online"));
        await flush();
        const woke = w.sockets.length - before;

        const gaveUp = world({ wakeTarget: target, backoff: { initial: 100, maxAttempts: 1 } });
        gaveUp.connect();
        await flush();
        gaveUp.sockets[0].drop();
        await gaveUp.clock.advance(100);
        gaveUp.last().drop();
        await flush();
        const offline = gaveUp.state().phase;
        target.dispatchEvent(new Event("focus"));
        await flush();
        const afterFocus = gaveUp.sockets.length;

        const refused = world({ wakeTarget: target });
        refused.connect();
        await flush();
        refused.sockets[0].welcome(refused.clock);
        refused.sockets[0].drop(4003, "forbidden");
        await flush();
        target.dispatchEvent(new Event("visibilitychange"));
        await flush();
        return { afterEight, woke, offline, afterFocus,
                 refused: [refused.state().phase, refused.sockets.length] };
        """,
    )
    assert result["afterEight"]["sockets"] == 9
    assert result["afterEight"]["text"] == "reconnecting, attempt 8"
    assert result["woke"] == 1  # at once, without the clock moving
    assert result["offline"] == "offline"
    assert result["afterFocus"] == 3
    assert result["refused"] == ["offline", 1]


def test_token_refresh_before_expiry_keeps_the_connection(page: Page) -> None:
    result = run(
        page,
        """
        const w = world({ tokenProvider: () => "token-2", pingInterval: 0 });
        w.connect();
        await flush();
        const ws = w.sockets[0];
        ws.welcome(w.clock, { token_expires_at: new Date(w.clock.now() + 100_000).toISOString() });
        await w.clock.advance(69_999);  // refresh at 70 s: 30 s before expiry (> half of 100 s)
        const early = ws.sent.length;
        await w.clock.advance(1);
        const auth = ws.sent[0];
        const expires = new Date(w.clock.now() + 3600_000).toISOString();
        ws.receive({ type: "ack", payload: { request_id: auth.request_id, command: "auth",
                     result: { token_expires_at: expires } } });
        await flush();
        const token = w.client.token;
        const expiresAt = w.client.tokenExpiresAt;
        ws.drop(1001);
        await w.clock.advance(2000);
        return { early, auth, token, expiresOk: expiresAt === Date.parse(expires),
                 sockets: w.sockets.length, reconnectToken: w.last().params.token };
        """,
    )
    assert result["early"] == 0
    assert result["auth"]["type"] == "auth"
    assert result["auth"]["payload"] == {"token": "token-2"}
    assert result["token"] == "token-2"
    assert result["expiresOk"] is True
    assert result["sockets"] == 2  # one connection until the drop: refreshing did not reconnect
    assert result["reconnectToken"] == "token-2"


def test_state_changes_are_observable(page: Page) -> None:
    result = run(
        page,
        """
        const w = world({ backoff: { maxAttempts: 1 } });
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock);
        w.sockets[0].drop(1001);
        await w.clock.advance(2000);
        w.last().drop();
        return w.states.map((s) => [s.phase, s.attempt, s.nextDelay, s.error]);
        """,
    )
    assert result == [
        ["connecting", 0, None, None],
        ["connected", 0, None, None],
        ["reconnecting", 1, 2000, None],
        ["reconnecting", 1, None, None],
        ["offline", 0, None, "ReconnectFailed"],
    ]


def test_reconnect_after_offline_and_close(page: Page) -> None:
    result = run(
        page,
        """
        const w = world({ backoff: { maxAttempts: 0 } });
        w.connect();
        await flush();
        w.sockets[0].drop();
        const offline = w.state().phase;
        const refused = outcome(w.client.send("bug_report.delete", { id: 1 }));
        await flush();
        w.client.reconnect();
        await flush();
        w.last().welcome(w.clock);
        const back = w.state().phase;
        const pending = outcome(w.client.send("bug_report.delete", { id: 1 }));
        w.client.close();
        await w.clock.advance(3600_000);
        return { offline, refused, back, pending, phase: w.state().phase,
                 closedWith: w.last().closedWith, sockets: w.sockets.length };
        """,
    )
    assert result["offline"] == "offline"
    assert result["refused"]["name"] == "ReconnectFailed"
    assert result["back"] == "connected"
    assert result["pending"]["name"] == "ClientClosed"
    assert result["phase"] == "closed"
    assert result["closedWith"]["code"] == 1000
    assert result["sockets"] == 2


def test_presence_messages_are_dispatched_and_the_view_is_renewed_after_a_reconnect(
    page: Page,
) -> None:
    """Issue 14.1: a `presence` message has no event id: it reaches "presence" listeners, not
    "event" ones, and does not move the resume point; the bug report declared with viewBug is
    declared again after each welcome (the server forgets it with the connection)."""
    result = run(
        page,
        """
        const w = world({ backoff: { initial: 100, jitter: false } });
        const seen = [];
        w.client.addEventListener("presence", (e) => seen.push(e.detail));
        w.connect();
        await flush();
        w.sockets[0].welcome(w.clock);
        const viewing = outcome(w.client.viewBug(42));
        await flush();
        const first = w.sockets[0].sent.at(-1);
        w.sockets[0].receive({ type: "ack", payload: { request_id: first.request_id,
          command: "presence.view", result: { bug_report_id: 42, project_id: 3, shown: true } } });
        w.sockets[0].receive({ type: "presence", event: "viewing",
          payload: { project_id: 3, user: { id: 7, username: "bob" }, bug_report_id: 42 } });
        await flush();
        const before = w.client.lastEventId;
        w.sockets[0].drop();
        await w.clock.advance(100);
        const second = w.last();
        second.welcome(w.clock);
        await flush();
        return { viewed: viewing.ok, sent: first, seen, events: w.events, before,
                 after: w.client.lastEventId, viewing: w.client.viewing,
                 renewed: second.sent.map((m) => ({ type: m.type, payload: m.payload })) };
        """,
    )
    assert result["viewed"] is True
    assert result["sent"]["type"] == "presence.view"
    assert result["sent"]["payload"] == {"bug_report_id": 42}
    assert [(m["event"], m["payload"]["user"]["username"]) for m in result["seen"]] == [
        ("viewing", "bob")
    ]
    assert result["events"] == []
    assert result["before"] == result["after"]  # the resume point did not move
    assert result["viewing"] == 42
    assert result["renewed"] == [{"type": "presence.view", "payload": {"bug_report_id": 42}}]
