"""The token a client connects with, and when to replace it.

With a `token_provider`, a token about to expire (by the server's clock, from the welcome)
is replaced before connecting, refreshed on the open connection ahead of expiry, and asked
for once more after close code 4001/4002.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bugstream.client.wire import maybe_await

log = logging.getLogger("bugstream.client")

#: Returns a JWT (a string), directly or as an awaitable; called for the first connection,
#: before the token expires, and once after close code 4001/4002.
TokenProvider = Callable[[], str | Awaitable[str]]

#: A token with less than this left is not used to connect; the provider is asked first.
STALE_TOKEN_SECONDS = 1.0


class TokenKeeper:
    def __init__(
        self,
        token: str | None,
        provider: TokenProvider | None,
        *,
        refresh_ratio: float,
        refresh_margin: float,
    ) -> None:
        if token is None and provider is None:
            raise ValueError("give a token or a token_provider")
        if not 0 < refresh_ratio < 1:
            raise ValueError("refresh_ratio must be between 0 and 1")
        self.token = token
        self.provider = provider
        self._refresh_ratio = refresh_ratio
        self._refresh_margin = refresh_margin
        #: When the token in use expires (epoch seconds, the server's clock); None: unknown.
        self.expires_at: float | None = None
        self._clock_offset = 0.0  # server clock minus ours

    @property
    def refreshes(self) -> bool:
        return self.provider is not None

    def expires_at_utc(self) -> datetime | None:
        return None if self.expires_at is None else datetime.fromtimestamp(self.expires_at, UTC)

    def on_welcome(self, server_time: datetime | None, expires: datetime | None) -> None:
        if server_time is not None:
            self._clock_offset = server_time.timestamp() - time.time()
        self.expires_at = expires.timestamp() if expires is not None else None

    def accepted(self, token: str, expires: datetime | None) -> None:
        """The server took `token` on the open connection."""
        self.token = token
        self.expires_at = expires.timestamp() if expires is not None else None

    async def for_connect(self) -> str:
        if self.provider is not None and (self.token is None or self.is_stale()):
            self.token = await self.call_provider()
            self.expires_at = None
        assert self.token is not None
        return self.token

    def is_stale(self) -> bool:
        left = self.seconds_left()
        return left is not None and left < STALE_TOKEN_SECONDS

    def seconds_left(self) -> float | None:
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() + self._clock_offset)

    def refresh_delay(self, left: float) -> float:
        """When to refresh: the earlier of `refresh_ratio` of the time left and
        `refresh_margin` seconds before expiry, but never before half the time left (so
        short-lived tokens do not refresh in a loop)."""
        return max(min(left * self._refresh_ratio, left - self._refresh_margin), left / 2)

    async def call_provider(self) -> str:
        assert self.provider is not None
        token = await maybe_await(self.provider())
        if not isinstance(token, str) or not token:
            raise TypeError("the token provider must return a non-empty string")
        return token

    async def renew(self) -> bool:
        """Ask the provider once for a token to retry with; False if it has no new one."""
        try:
            token = await self.call_provider()
        except Exception as exc:
            log.warning("the token provider failed: %s", exc)
            return False
        if token == self.token:
            return False
        self.token = token
        self.expires_at = None
        return True
