"""Throttling password sign-in: failed attempts per username and per client address.

Without it, `POST /auth/token` answered 12 wrong passwords in 0.15 s. A key (a username,
case-folded, or an address) that failed `max_failures` times within `window` seconds is
refused with 429 `rate_limited` and `Retry-After` until its oldest counted failure leaves the
window, with the right password too (else guessing goes on). A success clears the username's
failures. Counts are per instance (behind a load balancer, each instance counts its own), and
bounded: at most `max_keys` keys are kept, the least recently failed dropped first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class LoginThrottle:
    def __init__(
        self,
        *,
        max_failures_per_user: int,
        max_failures_per_address: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._limits = {"user": max_failures_per_user, "ip": max_failures_per_address}
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, username: str, address: str) -> int | None:
        """Whole seconds to wait before trying again, or None: go ahead."""
        now = self._clock()
        waits = [
            self._wait(f"{kind}:{key}", self._limits[kind], now)
            for kind, key in (("user", username.casefold()), ("ip", address))
        ]
        longest = max((w for w in waits if w is not None), default=None)
        return None if longest is None else max(1, math.ceil(longest))

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        for key in (f"user:{username.casefold()}", f"ip:{address}"):
            times = self._failures.pop(key, None) or deque()
            times.append(now)
            self._failures[key] = times  # most recently failed last
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"user:{username.casefold()}", None)

    def _wait(self, key: str, limit: int, now: float) -> float | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        if len(times) < limit:
            return None
        return times[-limit] + self._window - now
