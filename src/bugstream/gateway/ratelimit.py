"""Token buckets: `capacity` tokens, refilled at `refill_per_second`; one message costs one."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    __slots__ = ("_clock", "_updated", "capacity", "refill_per_second", "tokens")

    def __init__(
        self, capacity: float, refill_per_second: float, clock: Callable[[], float]
    ) -> None:
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self.tokens = capacity
        self._clock = clock
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(
            self.capacity, self.tokens + (now - self._updated) * self.refill_per_second
        )
        self._updated = now

    def take(self) -> float:
        """0.0 if a token was taken, else the seconds until one will be available."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.refill_per_second


class RateLimiter:
    """One bucket per key (a user id): a user's connections share their budget."""

    def __init__(
        self, capacity: float, refill_per_second: float, clock: Callable[[], float]
    ) -> None:
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self._clock = clock
        self._buckets: dict[int, TokenBucket] = {}

    def take(self, key: int) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(
                self.capacity, self.refill_per_second, self._clock
            )
        return bucket.take()

    def forget(self, key: int) -> None:
        """Drop a full bucket (its user left); a partly used one is kept so that reconnecting
        does not refill it."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket._refill()
            if bucket.tokens >= bucket.capacity:
                del self._buckets[key]
