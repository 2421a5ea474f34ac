"""Connection tickets (issue 13.7): a browser opens /ws with a single-use, short-lived ticket
instead of its access token in the URL. Over real sockets; the Redis ledger against a real
Redis, issued by one ledger and spent by another (two instances)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import jwt
import pytest

from bugstream.bus.tickets import RedisTickets
from bugstream.domain.enums import Role
from bugstream.domain.tickets import TicketClaims
from tests.support.factory import Factory
from tests.support.live import LiveServer, live_server, refused
from tests.support.redis import dedicated_db

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


async def ticket_for(live: LiveServer, token: str) -> str:
    async with httpx.AsyncClient(base_url=live.http_url) as http:
        answer = await http.post(
            "/api/v1/auth/ws-ticket", headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code == 200, answer.text
    ticket = answer.json()["ticket"]
    assert isinstance(ticket, str) and len(ticket) >= 32
    return ticket


@SQLITE
async def test_a_ticket_opens_one_connection_once(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        token = live.token_for(dev, ttl_seconds=600)
        ticket = await ticket_for(live, token)
        client = await live.connect(None, query=f"ticket={ticket}")
        assert client.welcome is not None
        assert client.welcome["user"]["id"] == dev.id
        # The connection lives as long as the token the ticket was issued for.
        token_exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        expected = datetime.fromtimestamp(token_exp, UTC).isoformat().replace("+00:00", "Z")
        assert client.welcome["token_expires_at"] == expected
        again = await live.connect(None, query=f"ticket={ticket}", welcome=False)
        payload, code = await refused(again)
        assert (payload["code"], code) == ("invalid_token", 4001)
        assert "already used" in payload["message"]


@SQLITE
async def test_an_expired_or_made_up_ticket_is_refused_and_tickets_need_a_token(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, ws_ticket_ttl_seconds=0.2) as live:
        ticket = await ticket_for(live, live.token_for(dev))
        await asyncio.sleep(0.3)
        late = await live.connect(None, query=f"ticket={ticket}", welcome=False)
        assert (await refused(late))[1] == 4001
        made_up = await live.connect(None, query="ticket=not-a-ticket", welcome=False)
        assert (await refused(made_up))[1] == 4001
        async with httpx.AsyncClient(base_url=live.http_url) as http:
            anonymous = await http.post("/api/v1/auth/ws-ticket")
        assert anonymous.status_code == 401


@pytest.mark.redis
async def test_the_redis_ledger_lets_any_instance_spend_a_ticket_once() -> None:
    async with dedicated_db() as url:
        issuing, spending = RedisTickets(url), RedisTickets(url)
        try:
            claims = TicketClaims(user_id=7, token_expires_at=2_000_000_000.0)
            await issuing.store("t-1", claims, ttl=5)
            assert await spending.redeem("t-1") == claims
            assert await spending.redeem("t-1") is None
            assert await issuing.redeem("t-1") is None
            await issuing.store("t-2", claims, ttl=0.05)
            await asyncio.sleep(0.1)
            assert await spending.redeem("t-2") is None
        finally:
            await issuing.close()
            await spending.close()
