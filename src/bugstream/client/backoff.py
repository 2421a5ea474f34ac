"""The reconnect delays: exponential backoff with full jitter.

Attempt `n` (1-based) waits a random time in `[0, bound(n)]`, where
`bound(n) = min(max_delay, initial * factor ** (n - 1))`: with the defaults 2, 4, 8, 16 and
32 seconds for the five attempts. Full jitter spreads the clients of a restarted server over
the whole window instead of having them all come back at the same instant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """How often and how patiently the client reconnects.

    `max_attempts` is the number of reconnect attempts after a failure; a connection that
    reaches the server's welcome resets the count; `None` retries forever (`Backoff.forever`),
    each wait at most `max_delay`. `jitter=False` waits exactly `bound(n)`.
    """

    initial: float = 2.0
    factor: float = 2.0
    max_attempts: int | None = 5
    max_delay: float = 60.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial) and self.initial >= 0):
            raise ValueError("initial must be a non-negative number of seconds")
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ValueError("factor must be at least 1")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("max_attempts must not be negative (None: retry forever)")
        if not self.max_delay >= 0:
            raise ValueError("max_delay must not be negative")
        if self.max_attempts is None and not math.isfinite(self.max_delay):
            raise ValueError("retrying forever needs a finite max_delay")

    @classmethod
    def forever(cls, initial: float = 2.0, max_delay: float = 30.0) -> Backoff:
        """Never give up: 2, 4, 8, 16 s, then every `max_delay` (30) s, with jitter."""
        return cls(initial=initial, max_attempts=None, max_delay=max_delay)

    def bound(self, attempt: int) -> float:
        """The longest wait before attempt `attempt` (1-based)."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        # Capped before the power can overflow.
        exponent = min(attempt - 1, 1024)
        try:
            raw = self.initial * self.factor**exponent
        except OverflowError:
            raw = math.inf
        return min(self.max_delay, raw)

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        """The wait before attempt `attempt`: `bound * random()` with jitter, else `bound`.

        `random` returns a number in [0, 1] (`random.random` by default in the client).
        """
        bound = self.bound(attempt)
        if not self.jitter:
            return bound
        return bound * min(1.0, max(0.0, random()))

    def delays(self, random: Callable[[], float]) -> Iterator[float]:
        """The waits of one full series of attempts, first to last (endless with
        `max_attempts=None`)."""
        attempt = 1
        while self.max_attempts is None or attempt <= self.max_attempts:
            yield self.delay(attempt, random)
            attempt += 1
