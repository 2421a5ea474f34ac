"""Suspicious activity: repeated invalid tokens or limit violations lead to a temporary block.

Strikes are counted per key (an address `ip:<addr>` or a user `user:<id>`) in a sliding
window; `threshold` strikes within `window` seconds block the key for `block_seconds`. A
blocked address or user is refused at the handshake (HTTP 429). Every strike and block is
reported to `on_security_event` (logged as a security event). `block_seconds=0` turns blocking
off: strikes are still counted and reported, nothing is closed or refused for them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class AbuseMonitor:
    def __init__(
        self,
        *,
        threshold: int,
        window: float,
        block_seconds: float,
        clock: Callable[[], float],
        on_security_event: Callable[[str, str, dict[str, object]], None],
    ) -> None:
        self.threshold = threshold
        self.window = window
        self.block_seconds = block_seconds
        self._clock = clock
        self._report = on_security_event
        self._strikes: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}

    def strike(self, key: str, kind: str, context: dict[str, object] | None = None) -> bool:
        """Count one violation; True if it blocks the key now. `context` (connection id,
        user id...) goes into the security event as it is."""
        now = self._clock()
        strikes = self._strikes.setdefault(key, deque())
        strikes.append(now)
        while strikes and now - strikes[0] > self.window:
            strikes.popleft()
        self._report("strike", key, {**(context or {}), "kind": kind, "count": len(strikes)})
        if len(strikes) >= self.threshold and self.block_seconds > 0:
            self._blocked_until[key] = now + self.block_seconds
            del self._strikes[key]
            self._report(
                "blocked", key, {**(context or {}), "kind": kind, "seconds": self.block_seconds}
            )
            return True
        return False

    def blocked_for(self, key: str) -> float:
        """Seconds the key stays blocked (0 if it is not)."""
        until = self._blocked_until.get(key)
        if until is None:
            return 0.0
        remaining = until - self._clock()
        if remaining <= 0:
            del self._blocked_until[key]
            return 0.0
        return remaining

    def sweep(self) -> None:
        """Forget expired strikes and blocks (called periodically; keeps memory bounded)."""
        now = self._clock()
        for key in [k for k, s in self._strikes.items() if not s or now - s[-1] > self.window]:
            del self._strikes[key]
        for key in [k for k, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[key]
