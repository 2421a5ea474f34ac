"""The SDK against a real server: typed events and handlers, resume across a server restart,
resync, and token refresh on a live connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bugstream.client import (
    Backoff,
    Client,
    ConnectionRejected,
    ConnectionState,
    Event,
    Phase,
    ResyncRequired,
    TokenExpired,
    Transport,
)
from bugstream.domain.enums import BugStatus, Role
from bugstream.domain.events import Event as OutboxEvent
from bugstream.domain.events import EventType
from bugstream.domain.models import (
    BugCreate,
    BugReport,
    BugStatusChange,
    Comment,
    Notification,
    User,
)
from bugstream.services import bugs
from bugstream.services.context import ServiceContext
from bugstream.store.outbox import read_events_after
from tests.support.factory import Factory
from tests.support.live import LiveServer, live_server

FAST = Backoff(initial=0.05, max_delay=0.4, max_attempts=40)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


async def collect(client: Client, into: list[Event]) -> None:
    async for event in client.events():
        into.append(event)


async def create_bugs(factory: Factory, project_id: int, user: User, titles: Sequence[str]) -> None:
    for title in titles:
        await bugs.create_bug(
            factory.ctx, Factory.actor(user), BugCreate(project_id=project_id, title=title)
        )


async def outbox_after(ctx: ServiceContext, after: int) -> list[OutboxEvent]:
    async with ctx.db.read() as repos:
        return list(await read_events_after(repos.conn, after, limit=10_000))


def visible_to(user: User, project_ids: set[int]) -> Callable[[OutboxEvent], bool]:
    def visible(event: OutboxEvent) -> bool:
        if event.type is EventType.NOTIFICATION:
            return event.user_id == user.id
        if event.type is EventType.USER:
            return event.user_id == user.id
        return event.project_id in project_ids

    return visible


# ---- events and handlers --------------------------------------------------------------------


async def test_events_are_typed_domain_entities_with_the_raw_payload(
    factory: Factory, transport: Transport
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    lead = await factory.user(Role.MANAGER)
    project = await factory.project(dev, lead)
    async with (
        live_server(factory.ctx) as live,
        Client(live.ws_url, token=live.token_for(dev), transport=transport) as client,
    ):
        bug = await factory.bug(project, lead, assignee=dev, title="Crash on save")
        await factory.comment(bug, lead, "seen it")
        received: list[Event] = []
        async for event in client.events():
            received.append(event)
            if event.type == "comment":
                break
    names = [e.name for e in received]
    assert names == [
        "bug_report.created",
        "bug_report.assigned",
        "notification.bug_assigned",
        "comment.created",
    ]
    ids = [e.event_id for e in received]
    assert ids == sorted(ids) and len(set(ids)) == 4
    created = received[0].payload_as(BugReport)
    assert created == BugReport.model_validate(received[0].raw)
    assert (created.id, created.title, created.status) == (bug.id, "Crash on save", BugStatus.OPEN)
    assert received[1].payload_as(BugReport).assignee_id == dev.id
    assert received[2].payload_as(Notification).user_id == dev.id
    comment = received[3].payload_as(Comment)
    assert comment.content == "seen it"
    # The comment event's project_id is not a Comment field: the raw payload keeps it.
    assert received[3].raw["project_id"] == project.id
    assert received[3].envelope()["payload"] == received[3].raw
    with pytest.raises(TypeError):
        received[3].payload_as(BugReport)


async def test_handlers_run_per_type_and_event_in_registration_order(
    factory: Factory, transport: Transport
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    calls: list[str] = []
    async with live_server(factory.ctx) as live:
        client = Client(live.ws_url, token=live.token_for(dev), transport=transport)

        @client.on("bug_report", "created")
        def on_created(event: Event) -> None:
            calls.append(f"created #{event.payload_as(BugReport).id}")

        @client.on("bug_report")
        async def on_bug(event: Event) -> None:
            calls.append(f"bug {event.event}")

        @client.on()
        async def on_anything(event: Event) -> None:
            calls.append(f"any {event.name}")
            if event.event == "status_changed":
                await client.close()

        with pytest.raises(ValueError, match="unknown event type"):
            client.on("bug_reports", "created")
        with pytest.raises(ValueError, match="has no event"):
            client.on("comment", "assigned")

        async with client:
            bug = await factory.bug(project, dev)
            await bugs.change_bug_status(
                factory.ctx,
                Factory.actor(dev),
                bug.id,
                BugStatusChange(status=BugStatus.IN_PROGRESS),
            )
            await asyncio.wait_for(client.run(), 10)
    assert calls == [
        f"created #{bug.id}",
        "bug created",
        "any bug_report.created",
        "bug status_changed",
        "any bug_report.status_changed",
    ]


# ---- the server restarts mid-stream ---------------------------------------------------------


async def test_a_server_restart_loses_no_event_and_repeats_none(
    factory: Factory, transport: Transport
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    outsider = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    elsewhere = await factory.project(outsider)
    received: list[Event] = []
    states: list[ConnectionState] = []
    async with live_server(factory.ctx) as first:
        port = first.port
        client = Client(first.ws_url, token=first.token_for(dev), backoff=FAST, transport=transport)
        client.on_state(states.append)
        await client.connect()
        start = client.last_event_id
        assert start is not None
        consumer = asyncio.create_task(collect(client, received))
        await create_bugs(factory, project.id, dev, ["before 1", "before 2"])
        await until(lambda: len(received) == 2)

    # The server is down: changes keep being committed.
    await until(lambda: client.state.phase is Phase.RECONNECTING)
    await create_bugs(factory, project.id, dev, ["down 1", "down 2", "down 3"])
    await create_bugs(factory, elsewhere.id, outsider, ["not for dev"])
    await factory.comment(await factory.bug(project, dev, title="down 4"), dev, "while down")

    async with live_server(factory.ctx, port=port) as second:
        assert second.port == port
        await create_bugs(factory, project.id, dev, ["after 1"])
        expected = [
            e.event_id
            for e in await outbox_after(factory.ctx, start)
            if visible_to(dev, {project.id})(e)
        ]
        await until(lambda: len(received) >= len(expected))
        await asyncio.sleep(0.2)  # nothing more may come
        assert [e.event_id for e in received] == expected
        titles = [e.raw.get("title") for e in received if e.type == "bug_report"]
        assert titles == ["before 1", "before 2", "down 1", "down 2", "down 3", "down 4", "after 1"]
        phases = [s.phase for s in states]
        assert phases.count(Phase.CONNECTED) == 2
        assert Phase.RECONNECTING in phases
        await client.close()
    await consumer
    assert client.state.phase is Phase.CLOSED


async def test_a_command_sent_while_the_server_is_down_completes_after_restart(
    factory: Factory,
    transport: Transport,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as first:
        port = first.port
        client = Client(first.ws_url, token=first.token_for(dev), backoff=FAST, transport=transport)
        await client.connect()
    await until(lambda: client.state.phase is Phase.RECONNECTING)
    pending = asyncio.create_task(
        client.send("bug_report.create", {"project_id": project.id, "title": "queued"}, timeout=10)
    )
    await asyncio.sleep(0.2)
    assert not pending.done()
    async with live_server(factory.ctx, port=port):
        created = await pending
        assert created["title"] == "queued"
        event = await anext(client.events())
        assert event.payload_as(BugReport).id == created["id"]
        await client.close()


# ---- resync ---------------------------------------------------------------------------------


async def test_a_resume_beyond_the_window_raises_resync_required_then_goes_on(
    factory: Factory,
    transport: Transport,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    await create_bugs(factory, project.id, dev, [f"old {n}" for n in range(8)])
    async with (
        live_server(factory.ctx, replay_window_events=3) as live,
        Client(
            live.ws_url, token=live.token_for(dev), last_event_id=1, transport=transport
        ) as client,
    ):
        with pytest.raises(ResyncRequired) as resync:
            async for _ in client.events():
                pytest.fail("no event may come before the resync notice")
        latest = client.welcome["latest_event_id"]
        assert resync.value.last_event_id == 1
        assert resync.value.latest_event_id == latest
        assert resync.value.oldest_event_id > 2
        await create_bugs(factory, project.id, dev, ["new"])
        event = await anext(client.events())
        assert event.raw["title"] == "new" and event.event_id > latest


async def test_with_on_resync_the_callback_is_told_and_events_go_on(
    factory: Factory, transport: Transport
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    await create_bugs(factory, project.id, dev, [f"old {n}" for n in range(8)])
    told: list[ResyncRequired] = []

    async def refetch(notice: ResyncRequired) -> None:
        told.append(notice)

    async with (
        live_server(factory.ctx, replay_window_events=3) as live,
        Client(
            live.ws_url,
            token=live.token_for(dev),
            last_event_id=1,
            on_resync=refetch,
            transport=transport,
        ) as client,
    ):
        await create_bugs(factory, project.id, dev, ["new"])
        event = await anext(client.events())
    assert event.raw["title"] == "new"
    assert len(told) == 1 and told[0].last_event_id == 1


# ---- tokens ---------------------------------------------------------------------------------


def short_token(live: LiveServer, user: User, seconds_left: float) -> str:
    """A token that expires about `seconds_left` from now (JWT times are whole seconds)."""
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=seconds_left)
    issued = expires - timedelta(seconds=60)
    return live.token_for(user, ttl_seconds=60, now=issued)


async def test_token_refresh_keeps_the_connection(factory: Factory, transport: Transport) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        issued: list[str] = []

        def provider() -> str:
            token = short_token(live, dev, 2.2)
            issued.append(token)
            return token

        states: list[ConnectionState] = []
        received: list[Event] = []
        async with Client(live.ws_url, token_provider=provider, transport=transport) as client:
            client.on_state(states.append)
            connection_id = client.connection_id
            first_expiry = client.token_expires_at
            assert first_expiry is not None
            arrivals: list[datetime] = []

            async def consume() -> None:
                async for event in client.events():
                    received.append(event)
                    arrivals.append(datetime.now(UTC))

            consumer = asyncio.create_task(consume())
            # Outlive the first token and its successor.
            ticks = 0
            while datetime.now(UTC) < first_expiry + timedelta(seconds=1.8):
                await create_bugs(factory, project.id, dev, ["tick"])
                ticks += 1
                await asyncio.sleep(0.2)
            await until(lambda: len(received) == ticks)
            assert client.connection_id == connection_id
            assert client.state.phase is Phase.CONNECTED
            assert states == []  # no reconnect, not even a blip
            assert len(issued) >= 3  # the first token and at least two refreshes
            expiry = client.token_expires_at
            assert expiry is not None and expiry > first_expiry + timedelta(seconds=1)
            # Events kept arriving on this connection after the first token expired.
            assert sum(1 for t in arrivals if t > first_expiry + timedelta(seconds=1)) >= 2
            assert [c.info.connection_id for c in live.gateway.hub.connections()] == [connection_id]
        await consumer


async def test_an_expired_token_without_a_provider_ends_with_token_expired(
    factory: Factory,
    transport: Transport,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        # 1-2 s left (JWT times are whole seconds): enough to connect first, on either
        # transport (the first SSE stream of a process pays ~0.2 s of httpx's imports).
        client = Client(live.ws_url, token=short_token(live, dev, 2.0), transport=transport)
        await client.connect()
        with pytest.raises(TokenExpired) as expired:
            await asyncio.wait_for(client.run(), 10)
    assert expired.value.close_code == 4002
    assert expired.value.error is not None and expired.value.error["code"] == "token_expired"
    assert "token_provider" in str(expired.value)
    assert client.state.phase is Phase.CLOSED
    assert isinstance(client.state.error, TokenExpired)


async def test_an_invalid_token_is_rejected_without_retrying(
    factory: Factory, transport: Transport
) -> None:
    async with live_server(factory.ctx) as live:
        sleeps: list[float] = []

        async def sleep(delay: float) -> None:
            sleeps.append(delay)

        client = Client(live.ws_url, token="not-a-jwt", sleep=sleep, transport=transport)
        with pytest.raises(ConnectionRejected) as rejected:
            await client.connect()
    assert rejected.value.close_code == 4001
    assert sleeps == []
