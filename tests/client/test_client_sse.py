"""The Python SDK's SSE fallback (issue 14.3) against a live server: with `transport="auto"`
it switches by itself when a proxy (tests/support/faultproxy.py) refuses or resets WebSocket
upgrades and lets plain HTTP through, and then works as on `/ws`: events, commands, limits.
The live SDK tests run on both transports as well (the `transport` fixture)."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest

from bugstream.client import (
    Backoff,
    Client,
    ConnectionState,
    Event,
    Phase,
    ValidationFailed,
)
from bugstream.domain.enums import Role
from bugstream.domain.models import BugReport
from bugstream.domain.protocol import CloseCode
from tests.client.test_client_live import FAST, collect, create_bugs, until
from tests.support.factory import Factory
from tests.support.faultproxy import FaultProxy
from tests.support.live import live_server

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.mark.parametrize(
    ("blocking", "upgrades_tried"),
    [("refuse", 1), ("reset", 2)],  # a 403 is final at once; resets after fallback_after=2
)
async def test_auto_falls_back_to_sse_where_a_proxy_blocks_websockets(
    factory: Factory, blocking: Literal["refuse", "reset"], upgrades_tried: int
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    states: list[ConnectionState] = []
    received: list[Event] = []
    async with live_server(factory.ctx) as live, FaultProxy(live.port) as proxy:
        proxy.block_websockets = blocking
        client = Client(f"{proxy.url}/ws", token=live.token_for(dev), backoff=FAST)
        client.on_state(states.append)
        transports: list[str] = [client.transport]
        await client.connect()
        transports.append(client.transport)
        assert transports == ["websocket", "sse"]
        assert proxy.blocked_upgrades == upgrades_tried
        assert [s.phase for s in states].count(Phase.CONNECTED) == 1
        [conn] = live.gateway.hub.connections_of(dev.id)
        assert conn.info.connection_id == client.connection_id

        consumer = asyncio.create_task(collect(client, received))
        await create_bugs(factory, project.id, dev, ["over sse"])
        created = await client.send("bug_report.create", {"project_id": project.id, "title": "t"})
        await until(lambda: len(received) == 2)
        assert [e.raw["title"] for e in received] == ["over sse", "t"]
        assert received[1].payload_as(BugReport).id == created["id"]
        assert proxy.blocked_upgrades == upgrades_tried  # it stayed on SSE

        await client.close()
        await consumer
        # Closing the client ends the stream: the server lets the connection go.
        await until(lambda: not live.gateway.hub.connections_of(dev.id))


async def test_a_message_refused_before_it_reaches_the_stream_fails_at_once(
    factory: Factory,
) -> None:
    # The POST's own validation (a message type over 64 characters: 422) answers here, not
    # on the stream: the command must fail with that error, not wait for its timeout.
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with (
        live_server(factory.ctx) as live,
        Client(live.ws_url, token=live.token_for(dev), transport="sse") as client,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ValidationFailed):
            await client.send("x" * 65, timeout=5)
        assert loop.time() - started < 2.0
        # The stream is still the same, and usable.
        connection_id = client.connection_id
        created = await client.send("bug_report.create", {"project_id": project.id, "title": "t"})
        assert created["title"] == "t"
        assert client.connection_id == connection_id


async def test_the_connection_limit_holds_over_sse_and_the_client_waits_its_turn(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    states: list[ConnectionState] = []
    async with live_server(factory.ctx, ws_max_connections_per_user=1) as live:
        first = await live.connect(dev)
        client = Client(
            live.ws_url,
            token=live.token_for(dev),
            transport="sse",
            backoff=Backoff(initial=0.1, max_delay=0.2, max_attempts=50),
        )
        client.on_state(states.append)
        connecting = asyncio.create_task(client.connect())
        await until(lambda: any(s.close_code == CloseCode.TOO_MANY_CONNECTIONS for s in states))
        assert not connecting.done()  # 4102: retried with backoff, not given up
        await first.close()
        await asyncio.wait_for(connecting, 10)
        assert client.transport == "sse" and client.state.phase is Phase.CONNECTED
        await client.close()
