"""`/metrics` counts what clients and the server really did, scraped from a live server."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from bugstream.client import Client
from bugstream.domain.enums import Role
from bugstream.domain.models import BugCreate
from bugstream.services import bugs
from tests.support.factory import Factory
from tests.support.live import live_server
from tests.support.metrics import scrape, value
from tests.support.waiting import wait_until


async def test_connections_messages_errors_and_deliveries_are_counted(factory: Factory) -> None:
    alice = await factory.user(Role.DEVELOPER)
    bob = await factory.user(Role.DEVELOPER)
    project = await factory.project(alice, bob)
    settings = {
        "ws_rate_limit_capacity": 3,
        "ws_rate_limit_refill_per_second": 0.001,
        "ws_abuse_threshold": 1000,
    }
    async with live_server(factory.ctx, **settings) as live:
        before = await scrape(live.http_url)
        assert value(before, "bugstream_ws_connections") == 0
        assert value(before, "bugstream_ws_connections_limit") == 10_000

        a = await live.connect(alice)
        b = await live.connect(bob)
        refused = await live.connect("not-a-token", welcome=False)
        assert (await refused.next())["payload"]["code"] == "invalid_token"
        await refused.closed()

        await a.send({"type": "ping"})
        assert (await a.next())["type"] == "pong"
        await a.send({"type": "no.such.thing"})
        assert (await a.next())["payload"]["code"] == "unknown_event_type"
        await a.send({"type": "ping"})
        assert (await a.next())["type"] == "pong"
        await a.send({"type": "ping"})  # the bucket of 3 is empty now
        assert (await a.next())["payload"]["code"] == "rate_limited"
        await b.ws.send("not json at all")
        assert (await b.next())["payload"]["code"] == "invalid_message_format"

        bug = await factory.bug(project, alice)
        for client in (a, b):
            event = await client.expect_event("bug_report", "created")
            assert event["payload"]["id"] == bug.id
        event_id = event["event_id"]

        s = await scrape(live.http_url)
        assert value(s, "bugstream_ws_connections") == 2
        assert value(s, "bugstream_ws_connects_total", result="accepted") == 2
        assert value(s, "bugstream_ws_connects_total", result="invalid_token") == 1
        assert value(s, "bugstream_auth_failures_total", code="invalid_token") == 1
        assert value(s, "bugstream_ws_messages_in_total", type="ping") == 2
        # Refused and malformed messages are messages received too: errors / messages is
        # then a true error rate (issue 11.6).
        assert value(s, "bugstream_ws_messages_in_total", type="rate_limited") == 1
        assert value(s, "bugstream_ws_messages_in_total", type="invalid") == 1
        assert value(s, "bugstream_errors_total", code="unknown_event_type") == 1
        assert value(s, "bugstream_errors_total", code="rate_limited") == 1
        assert value(s, "bugstream_ws_rate_limited_total") == 1
        # One event, two recipients: counted per message written.
        assert value(s, "bugstream_ws_messages_out_total", type="bug_report.created") == 2
        # Latency is observed once per event, commit to socket, and it is small.
        assert value(s, "bugstream_delivery_latency_seconds_count") == 1
        assert 0 < value(s, "bugstream_delivery_latency_seconds_sum") < 2.0
        assert value(s, "bugstream_delivery_latency_seconds_bucket", le="+Inf") == 1
        assert value(s, "bugstream_relay_lag_events") == 0
        assert value(s, "bugstream_relay_published_event_id") == event_id
        assert value(s, "bugstream_ws_outbound_queue_bytes") == 0
        assert value(s, "bugstream_db_pool_size") >= 1
        assert 0 <= value(s, "bugstream_db_pool_checked_out") <= value(s, "bugstream_db_pool_size")
        assert value(s, "bugstream_ws_dropped_total", reason="slow_consumer") == 0
        # Every socket write of the fan-out is counted with the frames it carried (the
        # welcome, pong and error replies and the event: one frame per write here, idle).
        writes = value(s, "bugstream_ws_socket_writes_total")
        assert writes >= 2
        assert writes <= value(s, "bugstream_ws_frames_written_total") <= 2 * writes

        await b.close()
        await wait_until(lambda: live.gateway.hub.connection_count == 1)
        s = await scrape(live.http_url)
        assert value(s, "bugstream_ws_connections") == 1
        assert value(s, "bugstream_ws_disconnects_total", reason="client_closed") == 1


async def test_replays_and_resyncs_are_counted(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    admin = await factory.admin()
    async with live_server(factory.ctx, replay_window_events=5) as live:
        watcher = await live.connect(dev)
        for i in range(8):
            await bugs.create_bug(
                factory.ctx, admin, BugCreate(project_id=project.id, title=f"{i}")
            )
        ids = [m["event_id"] for m in await watcher.events()]
        assert len(ids) == 8

        inside = await live.connect(dev, query=f"last_event_id={ids[-3]}")
        assert [m["event_id"] for m in await inside.events()] == ids[-2:]
        outside = await live.connect(dev, query=f"last_event_id={ids[0]}")
        assert (await outside.next())["type"] == "resync_required"

        s = await scrape(live.http_url)
        assert value(s, "bugstream_ws_replayed_events_total") == 2
        assert value(s, "bugstream_ws_resyncs_total") == 1


async def test_metrics_and_health_endpoints_are_not_in_the_api_schema(factory: Factory) -> None:
    async with live_server(factory.ctx) as live, live.http() as http:
        paths = (await http.get("/openapi.json")).json()["paths"]
        assert not {"/metrics", "/healthz", "/readyz"} & set(paths)
        assert (await http.get("/healthz")).json() == {"status": "ok"}


async def test_rest_errors_failed_logins_and_refused_upgrades_are_counted(
    factory: Factory,
) -> None:
    alice = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        async with live.http(alice) as http:
            assert (await http.get("/api/v1/bugs/999999")).status_code == 404
            assert (await http.post("/api/v1/projects", json={})).status_code in (403, 422)
        async with live.http() as anonymous:
            login = {"username": alice.username, "password": "wrong password"}
            assert (await anonymous.post("/api/v1/auth/token", json=login)).status_code == 401
            bad = {"Authorization": "Bearer not-a-token"}
            assert (await anonymous.get("/api/v1/users/me", headers=bad)).status_code == 401
        with pytest.raises(InvalidStatus):
            await live.connect(alice, origin=Origin("https://evil.example"))

        s = await scrape(live.http_url)
        assert value(s, "bugstream_errors_total", code="not_found") == 1
        assert value(s, "bugstream_http_requests_total", status="4xx") == 4
        assert value(s, "bugstream_errors_total", code="invalid_credentials") == 1
        assert value(s, "bugstream_auth_failures_total", code="invalid_credentials") == 1
        assert value(s, "bugstream_auth_failures_total", code="invalid_token") == 1
        assert value(s, "bugstream_ws_connects_total", result="http_403") == 1
        assert value(s, "bugstream_ws_connects_total", result="accepted") == 0
        # No `_created` series: half the series, nothing lost.
        assert not [name for name, _ in s if name.endswith("_created")]
        # The test database's pool: create_engine's defaults (10 + 10), on both backends.
        assert value(s, "bugstream_db_pool_size") == 10
        assert value(s, "bugstream_db_pool_max_overflow") == 10


async def test_sse_streams_and_presence_followers_are_gauged(factory: Factory) -> None:
    # An operator tells how many users are on the fallback (a proxy blocking WebSockets) and
    # how many receive presence chatter.
    alice = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        socket = await live.connect(alice)
        watcher = await live.connect(alice, query="presence=true")
        async with Client(live.ws_url, token=live.token_for(alice), transport="sse"):
            s = await scrape(live.http_url)
            assert value(s, "bugstream_ws_connections") == 3
            assert value(s, "bugstream_sse_streams") == 1
            assert value(s, "bugstream_presence_connections") == 1
            await socket.send({"type": "presence.view", "payload": {"bug_report_id": None}})
            await socket.expect(lambda m: m["type"] == "ack")
            s = await scrape(live.http_url)
            assert value(s, "bugstream_presence_connections") == 2  # a view opts in too
        await wait_until(lambda: live.gateway.hub.connection_count == 2)
        s = await scrape(live.http_url)
        assert value(s, "bugstream_sse_streams") == 0
        await watcher.close()
