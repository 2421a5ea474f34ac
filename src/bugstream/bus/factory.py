"""Pick the bus backend, and the connection-slot backend that goes with it, from the bus URL.

Backends are imported only when chosen: the memory bus needs no Redis client installed.
A new backend is one module, one branch here, and a run of the contract suites
(tests/bus/test_bus_contract.py; docs/extending.md).
"""

from __future__ import annotations

from bugstream.bus.base import Bus
from bugstream.bus.presence import MemoryPresence, PresenceStore
from bugstream.bus.slots import ConnectionSlots, MemorySlots
from bugstream.domain.tickets import TicketLedger


def _scheme(url: str) -> str:
    scheme, separator, _ = url.partition("://")
    return scheme if separator else ""


def create_bus(url: str, *, max_events: int, max_age: float, start_after: int = 0) -> Bus:
    scheme = _scheme(url)
    if scheme == "memory":
        from bugstream.bus.memory import MemoryBus

        return MemoryBus(max_events=max_events, max_age=max_age, start_after=start_after)
    if scheme in ("redis", "rediss"):
        from bugstream.bus.redis import RedisBus

        return RedisBus(url, max_events=max_events, max_age=max_age)
    raise ValueError(f"unsupported bus URL {url!r}: use memory:// or redis://host:port/db")


def create_slots(url: str, *, lease_seconds: float, instance_ttl_seconds: float) -> ConnectionSlots:
    """Per-user connection slots where the bus is: counted in this process for `memory://`,
    across every instance on the same Redis for `redis://`."""
    scheme = _scheme(url)
    if scheme == "memory":
        return MemorySlots()
    if scheme in ("redis", "rediss"):
        from bugstream.bus.redis_slots import RedisSlots

        return RedisSlots.from_url(url, ttl=lease_seconds, instance_ttl=instance_ttl_seconds)
    raise ValueError(f"unsupported bus URL {url!r}: use memory:// or redis://host:port/db")


def create_presence(url: str, *, instance_ttl_seconds: float) -> PresenceStore:
    """Who is online and viewing what: this process for `memory://`, every instance on the
    same Redis for `redis://` (a killed instance's users vanish after `instance_ttl_seconds`)."""
    scheme = _scheme(url)
    if scheme == "memory":
        return MemoryPresence()
    if scheme in ("redis", "rediss"):
        from bugstream.bus.redis_presence import RedisPresence

        return RedisPresence.from_url(url, instance_ttl=instance_ttl_seconds)
    raise ValueError(f"unsupported bus URL {url!r}: use memory:// or redis://host:port/db")


def create_tickets(url: str) -> TicketLedger:
    """Where connection tickets wait to be spent: this process, or Redis (any instance)."""
    scheme = _scheme(url)
    if scheme == "memory":
        from bugstream.bus.tickets import MemoryTickets

        return MemoryTickets()
    if scheme in ("redis", "rediss"):
        from bugstream.bus.tickets import RedisTickets

        return RedisTickets(url)
    raise ValueError(f"unsupported bus URL {url!r}: use memory:// or redis://host:port/db")
