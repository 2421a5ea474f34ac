"""Connection tickets: how a browser opens `/ws` without its access token in the URL.

A page asks `POST /api/v1/auth/ws-ticket` (with its token in the Authorization header) for a
ticket: a random string, good once, for a few seconds (`BUGSTREAM_WS_TICKET_TTL_SECONDS`),
then connects with `?ticket=`. URLs end up in proxy logs and browser consoles (Chromium
prints the whole URL of a WebSocket that fails to connect): a ticket there is spent or about
to expire, where a token would be good for an hour. The connection then lives as long as the
token the ticket was issued for, and is refreshed with `auth` messages as usual.

The ledger that keeps tickets is a backend chosen by the bus URL (bus/tickets.py): in the
process for `memory://`, in Redis for `redis://`, so a ticket issued by one instance can be
spent at another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TicketClaims:
    user_id: int
    #: When the access token the ticket was issued for expires (epoch seconds): the
    #: connection's own expiry.
    token_expires_at: float


class TicketLedger(Protocol):
    async def store(self, ticket: str, claims: TicketClaims, ttl: float) -> None: ...

    async def redeem(self, ticket: str) -> TicketClaims | None:
        """The ticket's claims, once: None if unknown, expired or already spent."""

    async def close(self) -> None: ...
