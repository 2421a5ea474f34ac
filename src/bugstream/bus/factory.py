"""Pick a bus backend from its URL."""

from __future__ import annotations

from bugstream.bus.base import Bus
from bugstream.bus.memory import MemoryBus


def create_bus(url: str, *, max_events: int, max_age: float, start_after: int = 0) -> Bus:
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        return MemoryBus(max_events=max_events, max_age=max_age, start_after=start_after)
    if scheme in ("redis", "rediss"):
        from bugstream.bus.redis import RedisBus

        return RedisBus(url, max_events=max_events, max_age=max_age)
    raise ValueError(f"unsupported bus URL {url!r}: use memory:// or redis://host:port/db")
