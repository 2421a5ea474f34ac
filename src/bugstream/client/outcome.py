"""How one connection attempt ended, and the error that ends the session when it must."""

from __future__ import annotations

import logging
import ssl as ssl_module
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from bugstream.client.errors import ConnectionRejected, TokenExpired
from bugstream.domain.protocol import CloseCode

log = logging.getLogger("bugstream.client")

#: A close without a close frame (the network, or a crash).
ABNORMAL_CLOSURE = 1006


def http_retryable(status: int) -> bool:
    """Whether an HTTP refusal of the upgrade is worth retrying: a server error or a
    timeout. Any other (403 origin or TLS, 404 path, 429 blocked address) is final."""
    return status >= 500 or status == 408


@dataclass(slots=True)
class Outcome:
    """How one connection attempt ended."""

    welcomed: bool
    close_code: int | None = None
    reason: str = ""
    error: dict[str, Any] | None = None  # the last `error` payload that answered no request
    exception: BaseException | None = None  # a connect that failed before any close code
    http_status: int | None = None
    dialed: bool = True  # False: it failed before connecting (the token provider)

    def rejected(self, *, refreshes: bool) -> ConnectionRejected:
        """The error for a "do not reconnect" close code."""
        code = self.close_code
        said = f": {self.error.get('message')}" if self.error else ""
        if code == CloseCode.TOKEN_EXPIRED:
            hint = (
                "the token provider gave no newer token"
                if refreshes
                else "pass token_provider= to have tokens refreshed"
            )
            return TokenExpired(
                f"the token expired (close code 4002); {hint}",
                close_code=code,
                reason=self.reason,
                error=self.error,
            )
        return ConnectionRejected(
            f"the server closed the connection with code {code} ({self.reason}){said}; "
            "not reconnecting",
            close_code=code,
            reason=self.reason,
            error=self.error,
        )


async def dial(
    url: str,
    token: str,
    *,
    open_timeout: float,
    ping_interval: float | None,
    ping_timeout: float | None,
    close_timeout: float,
    ssl: ssl_module.SSLContext | None,
) -> ClientConnection | Outcome:
    """Open the WebSocket (the token in the Authorization header), or how that failed."""
    try:
        return await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            # A dead link never answers the close frame either: waiting websockets' default
            # 10 s for it kept a client on a stalled link "connected" that long after its
            # pings had gone unanswered.
            close_timeout=close_timeout,
            ssl=ssl,
        )
    except InvalidStatus as exc:
        return Outcome(False, exception=exc, http_status=exc.response.status_code)
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        log.info("could not connect: %s", exc)
        return Outcome(False, exception=exc)
