"""The Python SDK through a fault-injecting proxy (tests/support/faultproxy.py): latency, a slow
link, stalls (loss as TCP sees it), resets and a cut link, while events are committed.

Each scenario checks what an application would notice: every event its user may see arrives,
once, in commit order (the ids it received are exactly the outbox's visible ids after its
start), and after the fault ends it is connected again within a bounded time. Each runs
over `/ws` and over the SSE fallback (the `transport` fixture).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from bugstream.client import Backoff, Client, ConnectionState, Event, Phase, Transport
from bugstream.domain.enums import Role
from bugstream.domain.models import BugCreate
from bugstream.services import bugs
from tests.client.test_client_live import outbox_after, until, visible_to
from tests.support.factory import Factory
from tests.support.faultproxy import FaultProxy
from tests.support.live import live_server

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

#: Retries every 0.1-1 s: a restored link is used within a second.
RETRY = Backoff(initial=0.1, factor=2.0, max_delay=1.0, max_attempts=60)
#: How soon after a fault ends the client must be connected again: the longest backoff
#: wait (1 s), a handshake through the proxy, and scheduling slack on a loaded 2-core CI box.
BACK_WITHIN = 3.0
WRITES = 60


@dataclass
class Run:
    client: Client
    received: list[Event] = field(default_factory=list)
    states: list[tuple[float, ConnectionState]] = field(default_factory=list)
    committed: dict[int, float] = field(default_factory=dict)  # bug id -> commit time

    def connections(self) -> int:
        """How many times the client reached the server's welcome."""
        return sum(1 for _, s in self.states if s.phase is Phase.CONNECTED)

    def connected_after(self, moment: float) -> float | None:
        """Seconds from `moment` until the client was next connected (None: not yet)."""
        for at, state in self.states:
            if at >= moment and state.phase is Phase.CONNECTED:
                return at - moment
        return None


Fault = Callable[[FaultProxy, Run], Awaitable[None]]


async def stream_through_fault(
    factory: Factory,
    fault: Fault,
    transport: Transport,
    *,
    writes: int = WRITES,
    pace: float = 0.02,
) -> tuple[Run, FaultProxy]:
    """Connect a client through a proxy, commit `writes` bugs `pace` apart while `fault`
    works on the proxy, and check that the client got exactly what it may see, in order."""
    dev = await factory.user(Role.DEVELOPER)
    outsider = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    elsewhere = await factory.project(outsider)
    loop = asyncio.get_running_loop()
    # Uncompressed frames: the slow link's bandwidth is set for ~500 B events as they are
    # written (permessage-deflate would shrink them; tests/gateway/test_compression*.py).
    # A stream's liveness is the server's heartbeat (its ping interval, plus the client's
    # ping_timeout), where a socket's is the client's own pings: both notice a stall in ~1.5 s.
    heartbeat = {"ws_ping_interval_seconds": 0.5} if transport == "sse" else {}
    server = live_server(factory.ctx, ws_compression=False, **heartbeat)
    async with server as live, FaultProxy(live.port) as proxy:
        client = Client(
            f"{proxy.url}/ws",
            token=live.token_for(dev),
            backoff=RETRY,
            ping_interval=0.5,
            ping_timeout=1.0,
            close_timeout=0.5,
            open_timeout=1.5,
            transport=transport,
        )
        run = Run(client)
        client.on_state(lambda state: run.states.append((loop.time(), state)))
        await client.connect()
        assert client.transport == transport
        start = client.last_event_id
        assert start is not None

        async def consume() -> None:
            async for event in client.events():
                run.received.append(event)

        async def write() -> None:
            for n in range(writes):
                target = project if n % 4 else elsewhere  # a quarter is not for dev
                author = dev if n % 4 else outsider
                result = await bugs.create_bug(
                    factory.ctx,
                    Factory.actor(author),
                    BugCreate(project_id=target.id, title=f"write {n}"),
                )
                run.committed[result.value.id] = loop.time()
                await asyncio.sleep(pace)

        consumer = asyncio.create_task(consume())
        try:
            async with asyncio.timeout(60):
                await asyncio.gather(write(), fault(proxy, run))
            expected = [
                e.event_id
                for e in await outbox_after(factory.ctx, start)
                if visible_to(dev, {project.id})(e)
            ]
            assert len(expected) == writes * 3 // 4
            await until(lambda: len(run.received) >= len(expected), timeout=30)
            await asyncio.sleep(0.3)  # nothing more may come
            got = [e.event_id for e in run.received]
            missing = sorted(set(expected) - set(got))
            assert not missing, f"lost {len(missing)}: {missing[:10]}"
            assert len(got) == len(set(got)), "duplicated"
            assert got == expected, "out of order"
        finally:
            consumer.cancel()
            await client.close()
    return run, proxy


async def test_latency_and_a_slow_link_lose_and_reorder_nothing(
    factory: Factory, transport: Transport
) -> None:
    latency = 0.15
    delays: list[float] = []

    async def slow_link(proxy: FaultProxy, run: Run) -> None:
        proxy.latency = latency
        proxy.bandwidth = 8_000  # bytes/s: about 15 events/s of ~500 B, fewer than written

        @run.client.on()
        def stamp(event: Event) -> None:
            now = asyncio.get_running_loop().time()
            delays.append(now - run.committed[event.raw["id"]])

    run, _ = await stream_through_fault(factory, slow_link, transport)
    assert run.connections() == 1, "a slow link is not a reason to reconnect"
    # The link really was slow: no event came sooner than its latency, and the capped
    # bandwidth queued the later ones behind the earlier.
    assert len(delays) == len(run.received)
    assert min(delays) >= latency
    assert max(delays) > 2 * latency


async def test_short_stalls_are_ridden_out_and_a_long_one_reconnects(
    factory: Factory, transport: Transport
) -> None:
    resumed_at: list[float] = []

    async def stalls(proxy: FaultProxy, run: Run) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.2)
        for _ in range(3):  # shorter than the ping timeout: the connection survives them
            proxy.stall()
            await asyncio.sleep(0.4)
            proxy.resume()
            await asyncio.sleep(0.2)
        assert run.connections() == 1
        proxy.stall()  # 3 s: pings go unanswered, the client gives the connection up
        await asyncio.sleep(3.0)
        assert run.client.state.phase is Phase.RECONNECTING
        proxy.resume()
        resumed_at.append(loop.time())

    run, _ = await stream_through_fault(factory, stalls, transport)
    assert run.connections() >= 2
    back = run.connected_after(resumed_at[0])
    assert back is not None and back <= BACK_WITHIN, back


async def test_resets_mid_stream_lose_and_repeat_nothing(
    factory: Factory, transport: Transport
) -> None:
    resets: list[float] = []

    async def resets_while_writing(proxy: FaultProxy, run: Run) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(4):
            await asyncio.sleep(0.25)
            await until(lambda: run.client.state.phase is Phase.CONNECTED)
            proxy.reset_all()
            resets.append(loop.time())

    run, _ = await stream_through_fault(factory, resets_while_writing, transport)
    assert run.connections() == 1 + len(resets)
    for moment in resets:
        back = run.connected_after(moment)
        assert back is not None and back <= BACK_WITHIN, back


async def test_a_cut_link_refuses_until_restored_and_the_client_comes_back(
    factory: Factory, transport: Transport
) -> None:
    restored: list[float] = []

    async def cut(proxy: FaultProxy, run: Run) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.3)
        proxy.cut()
        await asyncio.sleep(3.0)
        assert run.client.state.phase is Phase.RECONNECTING
        proxy.restore()
        restored.append(loop.time())

    run, proxy = await stream_through_fault(factory, cut, transport)
    assert proxy.refused >= 2, "the client kept trying while the link was cut"
    assert run.connections() == 2
    back = run.connected_after(restored[0])
    assert back is not None and back <= BACK_WITHIN, back
