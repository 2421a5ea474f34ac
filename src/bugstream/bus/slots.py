"""Per-user connection slots: at most N concurrent connections per user, the interface and
its in-process implementation.

`MemorySlots` counts on this instance; `RedisSlots` (bus/redis_slots.py) counts across the
cluster with expiring leases, so a crashed instance's connections stop counting. Which one
runs follows the bus URL (`bus.factory.create_slots`): instances that share a log share
their users' connection counts.
"""

from __future__ import annotations

from typing import Protocol


class ConnectionSlots(Protocol):
    def start(self) -> None:
        """Begin any upkeep (lease renewal); called once, on the event loop."""

    async def stop(self) -> None: ...

    async def acquire(self, user_id: int, connection_id: str, limit: int) -> bool:
        """Take a slot for the connection; False if the user already holds `limit`."""

    async def release(self, user_id: int, connection_id: str) -> None: ...


class MemorySlots:
    def __init__(self) -> None:
        self._held: dict[int, set[str]] = {}

    def start(self) -> None:
        pass  # nothing to keep alive in one process

    async def stop(self) -> None:
        pass

    async def acquire(self, user_id: int, connection_id: str, limit: int) -> bool:
        held = self._held.setdefault(user_id, set())
        if len(held) >= limit:
            return False
        held.add(connection_id)
        return True

    async def release(self, user_id: int, connection_id: str) -> None:
        held = self._held.get(user_id)
        if held is not None:
            held.discard(connection_id)
            if not held:
                del self._held[user_id]
