"""The SDK checks the server's message limit before sending (issue 13.6): an oversized command
fails at once with `message_too_large`, instead of waiting out its timeout for an answer the
server cannot address to it (its error carries no request id)."""

from __future__ import annotations

import asyncio

import pytest

from bugstream.client import BugstreamError, Client, Transport
from bugstream.client.wire import encode
from bugstream.domain.enums import Role
from bugstream.domain.errors import ErrorCode
from tests.support.factory import Factory
from tests.support.live import live_server

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def test_an_oversized_command_fails_at_once_and_the_connection_stays(
    factory: Factory,
    transport: Transport,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with (
        live_server(factory.ctx, ws_max_message_bytes=2_000) as live,
        Client(
            live.ws_url, token=live.token_for(dev), command_timeout=5.0, transport=transport
        ) as client,
    ):
        assert client.welcome["limits"]["max_message_bytes"] == 2_000
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(BugstreamError) as refused:
            big = {"project_id": project.id, "title": "t", "description": "x" * 3_000}
            await client.send("bug_report.create", big)
        assert loop.time() - started < 1.0, "it waited for an answer that cannot come"
        assert refused.value.code is ErrorCode.MESSAGE_TOO_LARGE
        assert refused.value.details["limit"] == 2_000

        # At the edge: the next message (request id c2), padded to exactly the limit, goes
        # out and is answered; one byte more would not.
        def sized(description: str) -> int:
            message = {
                "type": "bug_report.create",
                "request_id": "c2",
                "payload": {"project_id": project.id, "title": "fits", "description": description},
            }
            return len(encode(message).encode())

        padding = "d" * (2_000 - sized(""))
        assert sized(padding) == 2_000
        payload = {"project_id": project.id, "title": "fits", "description": padding}
        created = await client.send("bug_report.create", payload)
        assert created["title"] == "fits"
        with pytest.raises(BugstreamError):
            await client.send("bug_report.create", {**payload, "description": padding + "dd"})
