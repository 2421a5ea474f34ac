"""Connection-ticket ledgers (domain/tickets.py): where issued tickets wait to be spent once."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import orjson

from bugstream.domain.tickets import TicketClaims

MAX_MEMORY_TICKETS = 100_000


class MemoryTickets:
    """Tickets of this process: spendable only on this instance."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tickets: OrderedDict[str, tuple[float, TicketClaims]] = OrderedDict()

    async def store(self, ticket: str, claims: TicketClaims, ttl: float) -> None:
        now = self._clock()
        while self._tickets:  # expired ones go first (they were issued first)
            oldest = next(iter(self._tickets.values()))
            if oldest[0] > now and len(self._tickets) < MAX_MEMORY_TICKETS:
                break
            self._tickets.popitem(last=False)
        self._tickets[ticket] = (now + ttl, claims)

    async def redeem(self, ticket: str) -> TicketClaims | None:
        found = self._tickets.pop(ticket, None)
        if found is None or found[0] <= self._clock():
            return None
        return found[1]

    async def close(self) -> None:
        self._tickets.clear()


class RedisTickets:
    """Tickets in Redis (`<prefix>:ticket:<ticket>`, expiring): any instance may spend one,
    once (GETDEL)."""

    def __init__(self, url: str, prefix: str = "bugstream") -> None:
        from bugstream.bus.redis_client import redis_client

        self._redis = redis_client(url, max_connections=16)
        self._prefix = prefix

    async def store(self, ticket: str, claims: TicketClaims, ttl: float) -> None:
        value = orjson.dumps({"u": claims.user_id, "e": claims.token_expires_at})
        await self._redis.set(f"{self._prefix}:ticket:{ticket}", value, px=max(1, int(ttl * 1000)))

    async def redeem(self, ticket: str) -> TicketClaims | None:
        raw = await self._redis.getdel(f"{self._prefix}:ticket:{ticket}")
        if raw is None:
            return None
        data = orjson.loads(raw)
        return TicketClaims(user_id=int(data["u"]), token_expires_at=float(data["e"]))

    async def close(self) -> None:
        await self._redis.aclose()
