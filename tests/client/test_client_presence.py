"""Presence in the Python SDK: `client.presence.on_change` gets the presence messages (they
are not events: `events()` never yields them), and the bug report declared with
`client.presence.view_bug` is declared again after a reconnect, so the others see it again."""

from __future__ import annotations

import pytest

from bugstream.client import Client, NotFound, PresenceChange, Transport
from bugstream.domain.protocol import CloseCode
from tests.client.test_client_live import FAST, until
from tests.support.factory import Factory
from tests.support.live import live_server
from tests.support.presence import presence_messages


async def test_presence_reaches_on_change_and_the_view_survives_a_reconnect(
    factory: Factory,
    transport: Transport,
) -> None:
    alice = await factory.user(name="alice")
    bob = await factory.user(name="bob")
    outsider = await factory.user(name="carol")
    project = await factory.project(alice, bob)
    bug = await factory.bug(project, alice)
    hidden = await factory.bug(await factory.project(outsider), outsider)
    changes: list[PresenceChange] = []
    async with live_server(factory.ctx) as live:
        # Presence messages are opt-in: `presence=True` (`?presence=true` in the URL).
        client = Client(
            live.ws_url,
            token=live.token_for(alice),
            backoff=FAST,
            transport=transport,
            presence=True,
        )
        assert client.url == f"{live.ws_url}?presence=true"
        client.presence.on_change(changes.append)
        async with client:
            watcher = await live.connect(bob, query="presence=true")
            await until(lambda: len(changes) == 2)  # alice herself, then bob
            assert changes == [
                PresenceChange("joined", project.id, alice.id, "alice"),
                PresenceChange("joined", project.id, bob.id, "bob"),
            ]

            result = await client.presence.view_bug(bug.id)
            assert result == {"bug_report_id": bug.id, "project_id": project.id, "shown": True}
            with pytest.raises(NotFound):
                await client.presence.view_bug(hidden.id)
            assert client.presence.viewing == bug.id  # the refused view changed nothing
            seen = [
                (m["event"], m["payload"].get("bug_report_id"))
                for m in await presence_messages(watcher, 0.4)
            ]
            assert seen == [("joined", None), ("viewing", bug.id)]

            # The server drops the connection; the client reconnects and views the bug again.
            for conn in live.gateway.hub.connections_of(alice.id):
                live.gateway.revoke(conn, CloseCode.GOING_AWAY, "restarting (test)")
            again = [
                (m["event"], m["payload"].get("bug_report_id"))
                for m in await presence_messages(watcher, 1.0)
            ]
            assert again == [
                ("stopped_viewing", bug.id),
                ("left", None),
                ("joined", None),
                ("viewing", bug.id),
            ]

            # The server lost its presence channel and is back: the application is told to
            # read the snapshot again (not an on_change: it names no user or project).
            resyncs: list[str] = []
            client.presence.on_resync(lambda: resyncs.append("resync"))
            seen_before = len(changes)
            live.gateway.presence.resync()
            await until(lambda: resyncs == ["resync"])
            assert len(changes) == seen_before
