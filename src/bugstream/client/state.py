"""The connection state the client reports, for status lines and connection indicators."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

log = logging.getLogger("bugstream.client")


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


StateCallback = Callable[[ConnectionState], object]


class StateReporter:
    """The client's current `ConnectionState`, and the callbacks told of each change (an
    async callback's coroutine goes to `spawn`, which runs it as a task)."""

    def __init__(self, max_attempts: int | None, spawn: Callable[[Awaitable[Any]], None]):
        self._max_attempts = max_attempts
        self._spawn = spawn
        self.current = ConnectionState(Phase.CONNECTING, max_attempts=max_attempts)
        self._callbacks: list[StateCallback] = []

    def subscribe(self, callback: StateCallback) -> StateCallback:
        self._callbacks.append(callback)
        return callback

    def set(self, phase: Phase, **fields: Any) -> None:
        state = ConnectionState(phase, max_attempts=self._max_attempts, **fields)
        if state == self.current:
            return
        self.current = state
        for callback in list(self._callbacks):
            try:
                result = callback(state)
                if inspect.isawaitable(result):
                    self._spawn(result)
            except Exception:
                log.exception("a connection state callback failed")
