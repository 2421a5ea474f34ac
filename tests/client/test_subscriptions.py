"""Declared subscriptions survive reconnects (issue 13.3): after a server restart the client
narrows the new connection again by itself, and no event outside the subscription reaches the
application meanwhile (it filters by the server's rule until the server has it again)."""

from __future__ import annotations

import asyncio

import pytest

from bugstream.client import Client, Event, Subscription, Transport
from bugstream.domain.enums import Role
from bugstream.domain.events import EventName, EventType
from tests.client.test_client_live import FAST, collect, create_bugs, until
from tests.support.factory import Factory
from tests.support.live import live_server


def _event(type_: str, name: str, payload: dict[str, object]) -> Event:
    return Event(type=type_, event=name, event_id=1, payload=None, raw=payload)  # type: ignore[arg-type]


def test_the_client_side_rule_is_the_servers() -> None:
    only = Subscription.only(projects=[3], bug_reports=[42])
    assert only.wants(_event("bug_report", "created", {"id": 7, "project_id": 3}), 1)
    assert only.wants(_event("bug_report", "updated", {"id": 42, "project_id": 9}), 1)
    assert only.wants(_event("comment", "created", {"bug_report_id": 42, "project_id": 9}), 1)
    assert only.wants(_event("project", "updated", {"id": 3}), 1)
    assert not only.wants(_event("bug_report", "created", {"id": 8, "project_id": 9}), 1)
    assert not only.wants(_event("project", "updated", {"id": 9}), 1)
    # Personal events always arrive, and so does news of one's own access.
    assert only.wants(_event("notification", "bug_assigned", {"user_id": 1}), 1)
    assert only.wants(_event("user", "updated", {"id": 1}), 1)
    assert only.wants(_event("membership", "removed", {"project_id": 9, "user_id": 1}), 1)
    assert not only.wants(_event("membership", "added", {"project_id": 9, "user_id": 2}), 1)
    assert Subscription().wants(_event("bug_report", "created", {"project_id": 9}), 1)


def test_renewal_messages_and_their_edges() -> None:
    assert Subscription().renewal() is None
    assert Subscription.only([3], [42]).renewal() == {
        "type": "subscribe",
        "payload": {"projects": [3], "bug_reports": [42]},
    }
    personal = Subscription.only([3]).removing([3], [])
    assert personal.renewal() == {"type": "unsubscribe", "payload": {"all": True}}
    with pytest.raises(ValueError, match="subscribe to what you want"):
        Subscription().removing([3], [])
    assert Subscription.only([3]).adding([4], [5]) == Subscription.only([3, 4], [5])


async def test_a_subscription_survives_a_server_restart(
    factory: Factory, transport: Transport
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    watched = await factory.project(dev, name="watched")
    ignored = await factory.project(dev, name="ignored")
    received: list[Event] = []
    async with live_server(factory.ctx) as first:
        port = first.port
        client = Client(first.ws_url, token=first.token_for(dev), backoff=FAST, transport=transport)
        await client.connect()
        result = await client.subscriptions.subscribe(projects=[watched.id])
        assert result == {"all": False, "projects": [watched.id], "bug_reports": []}
        consumer = asyncio.create_task(collect(client, received))
        await create_bugs(factory, ignored.id, dev, ["not wanted 1"])
        await create_bugs(factory, watched.id, dev, ["wanted 1"])
        await until(lambda: len(received) == 1)

    # Down: changes in both projects; they are replayed after the restart, filtered.
    await create_bugs(factory, ignored.id, dev, ["not wanted 2"])
    await create_bugs(factory, watched.id, dev, ["wanted 2"])
    renewed: list[object] = []
    async with live_server(factory.ctx, port=port) as second:
        await until(lambda: len(received) >= 2)
        await create_bugs(factory, ignored.id, dev, ["not wanted 3"])
        await create_bugs(factory, watched.id, dev, ["wanted 3"])
        await until(lambda: len(received) >= 3)
        await asyncio.sleep(0.3)  # nothing more may come
        # The server has the subscription again: its view of this connection says so.
        [conn] = second.gateway.hub.connections_of(dev.id)
        renewed.append(conn.subscription.describe())
    consumer.cancel()
    await client.close()
    titles = [e.raw["title"] for e in received if e.name == "bug_report.created"]
    assert titles == ["wanted 1", "wanted 2", "wanted 3"]
    assert renewed == [{"all": False, "projects": [watched.id], "bug_reports": []}]
    assert client.subscriptions.current == Subscription.only(projects=[watched.id])
    assert {EventType.BUG_REPORT.value} == {e.type for e in received}
    assert EventName.CREATED.value in {e.event for e in received}
