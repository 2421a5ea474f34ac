"""The connection state the client reports, for status lines and connection indicators."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    CONNECTING = "connecting"  # the first connection is being opened
    CONNECTED = "connected"  # welcome received; events flow
    RECONNECTING = "reconnecting"  # waiting `next_delay` s before attempt `attempt`, or in it
    CLOSED = "closed"  # closed by the application, or failed for good (`error`)


@dataclass(frozen=True, slots=True)
class ConnectionState:
    phase: Phase
    #: The reconnect attempt under way or next (1-based), 0 when not reconnecting.
    attempt: int = 0
    #: None: the client retries forever (`Backoff.forever()`).
    max_attempts: int | None = 0
    #: Seconds until the next attempt starts while waiting, else None.
    next_delay: float | None = None
    connection_id: str | None = None
    #: Close code of the connection that ended last (None: it never opened, or no code).
    close_code: int | None = None
    #: Why the client closed for good (None when the application closed it).
    error: BaseException | None = None

    def __str__(self) -> str:
        if self.phase is Phase.CONNECTED:
            return f"connected ({self.connection_id})"
        if self.phase is Phase.RECONNECTING:
            text = f"reconnecting, attempt {self.attempt}"
            if self.max_attempts is not None:
                text += f" of {self.max_attempts}"
            if self.next_delay is not None:
                text += f" in {self.next_delay:.1f} s"
            return text
        if self.phase is Phase.CLOSED and self.error is not None:
            return f"closed: {self.error}"
        return self.phase.value
