"""How one connection attempt ended, and the error that ends the session when it must."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bugstream.client.errors import ConnectionRejected, TokenExpired
from bugstream.domain.protocol import CloseCode

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
