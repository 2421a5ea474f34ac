"""Every /ws limit at its edge, with small configured values: N allowed, N+1 refused."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from bugstream.domain.enums import Role
from tests.support.factory import Factory
from tests.support.live import TEST_SECRET, Client, LiveServer, live_server, pong, refused
from tests.support.waiting import wait_until

# Generous limits so that only the limit a test is about can trigger.
CALM: dict[str, Any] = {"ws_rate_limit_capacity": 10_000, "ws_abuse_threshold": 10_000}


async def handshake_status(live: LiveServer, token: str, **kwargs: Any) -> int:
    """Open a WebSocket; the HTTP status of a refused handshake, or 101 if it was accepted."""
    try:
        ws = await websockets.connect(f"{live.ws_url}?token={token}", open_timeout=5, **kwargs)
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


# ---- connections --------------------------------------------------------------------------


async def test_three_connections_per_user_and_the_fourth_is_refused(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    other = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, **CALM) as live:
        clients = [await live.connect(dev) for _ in range(3)]
        assert clients[0].welcome["limits"]["max_connections_per_user"] == 3
        fourth = await live.connect(dev, welcome=False)
        payload, code = await refused(fourth)
        assert payload == {
            "code": "too_many_connections",
            "message": "at most 3 connections per user",
            "limit": 3,
        }
        assert code == 4102
        # The three stay up, and another user is not affected.
        for client in clients:
            await pong(client)
        await pong(await live.connect(other))

        await clients[0].close()
        await wait_until(lambda: len(live.gateway.hub.connections_of(dev.id)) == 2)
        replacement = await live.connect(dev)
        await pong(replacement)
        payload, code = await refused(await live.connect(dev, welcome=False))
        assert (payload["code"], code) == ("too_many_connections", 4102)


async def test_configured_connections_per_user(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, ws_max_connections_per_user=1, **CALM) as live:
        first = await live.connect(dev)
        assert first.welcome["limits"]["max_connections_per_user"] == 1
        payload, code = await refused(await live.connect(dev, welcome=False))
        assert (payload["code"], payload["limit"], code) == ("too_many_connections", 1, 4102)
        await pong(first)


async def test_server_connection_limit_closes_with_4103(factory: Factory) -> None:
    users = [await factory.user(Role.DEVELOPER) for _ in range(3)]
    async with live_server(factory.ctx, ws_max_connections=2, **CALM) as live:
        first = await live.connect(users[0])
        await live.connect(users[1])
        payload, code = await refused(await live.connect(users[2], welcome=False))
        assert set(payload) == {"code", "message"}
        assert payload["code"] == "service_unavailable"
        assert code == 4103
        assert live.gateway.hub.connection_count == 2

        await first.close()
        await wait_until(lambda: live.gateway.hub.connection_count == 1)
        await pong(await live.connect(users[2]))


# ---- message rate ---------------------------------------------------------------------------


async def test_rate_limit_capacity_then_refill(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    capacity, refill = 5, 4.0
    async with live_server(
        factory.ctx,
        ws_rate_limit_capacity=capacity,
        ws_rate_limit_refill_per_second=refill,
        ws_abuse_threshold=100,
    ) as live:
        client = await live.connect(dev)
        assert client.welcome["limits"]["rate_limit"] == {
            "capacity": capacity,
            "refill_per_second": refill,
        }
        for _ in range(capacity + 1):
            await client.send({"type": "ping"})
        answers = [await client.next() for _ in range(capacity + 1)]
        assert [a["type"] for a in answers] == ["pong"] * capacity + ["error"]
        limited = answers[-1]["payload"]
        assert limited["code"] == "rate_limited"
        assert 0 < limited["retry_after"] <= 1 / refill

        # After 1/refill seconds exactly one more message is allowed.
        await asyncio.sleep(1 / refill)
        await client.send({"type": "ping"})
        await client.send({"type": "ping"})
        assert (await client.next())["type"] == "pong"
        again = await client.next()
        assert again["type"] == "error" and again["payload"]["code"] == "rate_limited"
        assert client.ws.close_code is None


async def test_rate_limit_is_shared_by_a_users_connections(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    other = await factory.user(Role.DEVELOPER)
    async with live_server(
        factory.ctx,
        ws_rate_limit_capacity=4,
        ws_rate_limit_refill_per_second=0.01,
        ws_abuse_threshold=100,
    ) as live:
        a, b = await live.connect(dev), await live.connect(dev)
        for client in (a, b, a, b):
            await pong(client)
        await b.send({"type": "ping"})
        error = await b.next()
        assert error["payload"]["code"] == "rate_limited"
        # Another user has a budget of their own.
        await pong(await live.connect(other))


# ---- message size ---------------------------------------------------------------------------


def ping_of_size(size: int, pad_char: str = "x") -> str:
    """A ping message of exactly `size` UTF-8 bytes."""
    empty = '{"type":"ping","payload":{"pad":""}}'
    room = size - len(empty.encode())
    width = len(pad_char.encode())
    assert room >= 0 and room % width == 0
    message = empty.replace('""', '"' + pad_char * (room // width) + '"')
    assert len(message.encode()) == size
    return message


async def test_max_message_bytes_edge(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    limit = 200
    async with live_server(factory.ctx, ws_max_message_bytes=limit, **CALM) as live:
        client = await live.connect(dev)
        assert client.welcome["limits"]["max_message_bytes"] == limit
        await client.send(ping_of_size(limit))
        assert (await client.next())["type"] == "pong"
        await client.send(ping_of_size(limit + 1))
        error = (await client.next())["payload"]
        assert error["code"] == "message_too_large"
        assert f"{limit + 1} bytes" in error["message"]
        # The limit counts bytes, not characters: 2-byte characters reach it sooner.
        await client.send(ping_of_size(limit, pad_char="é"))
        assert (await client.next())["type"] == "pong"
        await client.send(ping_of_size(limit + 2, pad_char="é"))
        assert (await client.next())["payload"]["code"] == "message_too_large"
        # Binary frames count the same way.
        await client.send(ping_of_size(limit).encode())
        assert (await client.next())["type"] == "pong"
        await client.send(ping_of_size(limit + 1).encode())
        assert (await client.next())["payload"]["code"] == "message_too_large"
        await pong(client)


async def test_frames_over_max_frame_bytes_close_the_connection_with_1009(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    frame_limit = 1024
    async with live_server(
        factory.ctx, ws_max_message_bytes=200, ws_max_frame_bytes=frame_limit, **CALM
    ) as live:
        client = await live.connect(dev)
        # Up to the frame limit the message is read and answered with message_too_large...
        await client.send(ping_of_size(frame_limit))
        assert (await client.next())["payload"]["code"] == "message_too_large"
        await pong(client)
        # ...beyond it the server does not read it at all: 1009 (message too big).
        await client.send(ping_of_size(frame_limit + 1))
        code, _ = await client.closed()
        assert code == 1009


# ---- abuse ----------------------------------------------------------------------------------


async def blocked_close(client: Client) -> float:
    """Read to the `blocked` error and the 4004 close; when it came (monotonic)."""
    message = await client.expect(lambda m: m["payload"].get("code") == "blocked")
    assert set(message["payload"]) == {"code", "message"}
    at = time.monotonic()
    code, _ = await client.closed()
    assert code == 4004
    return at


async def test_repeated_rate_limit_violations_block_the_address(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    other = await factory.user(Role.DEVELOPER)
    block = 1.0
    async with live_server(
        factory.ctx,
        ws_rate_limit_capacity=1,
        ws_rate_limit_refill_per_second=0.01,
        ws_abuse_threshold=3,
        ws_block_seconds=block,
    ) as live:
        client = await live.connect(dev)
        await pong(client)
        # Two strikes: refused, but the connection stays.
        for _ in range(2):
            await client.send({"type": "ping"})
            assert (await client.next())["payload"]["code"] == "rate_limited"
        assert client.ws.close_code is None
        # The third blocks.
        await client.send({"type": "ping"})
        blocked_at = await blocked_close(client)
        # The address is refused at the handshake, whoever the token is for.
        assert await handshake_status(live, live.token_for(other)) == 429
        assert await handshake_status(live, live.token_for(dev)) == 429
        # Until the block expires.
        await asyncio.sleep(max(0.0, blocked_at + block + 0.1 - time.monotonic()))
        assert await handshake_status(live, live.token_for(other)) == 101


async def test_repeated_oversize_messages_block_the_address(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    block = 0.8
    async with live_server(
        factory.ctx,
        ws_max_message_bytes=100,
        ws_abuse_threshold=3,
        ws_block_seconds=block,
        ws_rate_limit_capacity=10_000,
    ) as live:
        client = await live.connect(dev)
        for _ in range(2):
            await client.send(ping_of_size(101))
            assert (await client.next())["payload"]["code"] == "message_too_large"
        await pong(client)
        await client.send(ping_of_size(101))
        blocked_at = await blocked_close(client)
        assert await handshake_status(live, live.token_for(dev)) == 429
        await asyncio.sleep(max(0.0, blocked_at + block + 0.1 - time.monotonic()))
        await pong(await live.connect(dev))


async def test_block_seconds_zero_turns_blocking_off(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(
        factory.ctx,
        ws_rate_limit_capacity=1,
        ws_rate_limit_refill_per_second=0.01,
        ws_abuse_threshold=2,
        ws_block_seconds=0,
    ) as live:
        client = await live.connect(dev)
        await pong(client)
        for _ in range(5):  # far past the threshold: refused each time, never closed
            await client.send({"type": "ping"})
            assert (await client.next())["payload"]["code"] == "rate_limited"
        assert client.ws.close_code is None
        assert await handshake_status(live, live.token_for(dev)) == 101


async def test_a_blocked_user_is_refused_from_another_address(factory: Factory) -> None:
    """Behind a proxy the client address is X-Forwarded-For: the user is blocked as well as
    the address they misbehaved from."""
    dev = await factory.user(Role.DEVELOPER)
    other = await factory.user(Role.DEVELOPER)
    async with live_server(
        factory.ctx,
        behind_tls_proxy=True,
        ws_rate_limit_capacity=1,
        ws_rate_limit_refill_per_second=0.01,
        ws_abuse_threshold=2,
        ws_block_seconds=60,
    ) as live:

        def via(address: str) -> dict[str, Any]:
            headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": address}
            return {"additional_headers": headers}

        client = await live.connect(dev, **via("203.0.113.1"))
        for _ in range(3):
            await client.send({"type": "ping"})
        await blocked_close(client)
        # The same address is refused at the handshake...
        assert await handshake_status(live, live.token_for(other), **via("203.0.113.1")) == 429
        # ...the user from elsewhere is refused once identified...
        payload, code = await refused(await live.connect(dev, welcome=False, **via("203.0.113.2")))
        assert (payload["code"], code) == ("blocked", 4004)
        # ...and others from elsewhere are fine.
        await pong(await live.connect(other, **via("203.0.113.2")))


async def test_repeated_invalid_tokens_block_the_address(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, ws_abuse_threshold=3, ws_block_seconds=60) as live:
        for _ in range(2):
            payload, code = await refused(await live.connect("garbage", welcome=False))
            assert (payload["code"], code) == ("invalid_token", 4001)
        # Two strikes: a good token still gets in.
        await pong(await live.connect(dev))
        payload, code = await refused(await live.connect("garbage", welcome=False))
        assert (payload["code"], code) == ("invalid_token", 4001)
        # The third blocked the address: even a valid token is refused at the handshake.
        assert await handshake_status(live, live.token_for(dev)) == 429
        with pytest.raises(InvalidStatus) as refused_handshake:
            await live.connect(dev)
        assert refused_handshake.value.response.status_code == 429
        assert b"blocked" in refused_handshake.value.response.body


async def test_a_10_kb_token_is_accepted_at_ws_as_over_rest(factory: Factory) -> None:
    """An identity provider's token can be large; /ws refused 10 KB with HTTP 414/431 while
    REST took it (issue 11.6). Both take tokens up to MAX_TOKEN_LENGTH (16 KiB)."""
    dev = await factory.user(Role.DEVELOPER)
    now = int(time.time())
    claims = {
        "sub": str(dev.id),
        "role": "developer",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "groups": ["g" * 40] * 220,  # ~10 KB of claims, as large IdP tokens carry
    }
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    assert 10_000 < len(token) < 16_384
    async with live_server(factory.ctx) as live:
        async with live.http() as http:
            me = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200
        in_query = await live.connect(token)
        assert in_query.welcome["user"]["id"] == dev.id
        in_header = await Client.open(
            live.ws_url, additional_headers={"Authorization": f"Bearer {token}"}
        )
        assert in_header.welcome["user"]["id"] == dev.id
        await in_header.close()
