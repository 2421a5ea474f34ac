"""Cluster-wide per-user connection slots in Redis, as leases that expire.

Each user has a sorted set `<prefix>:conns:<user_id>` of connection ids scored by the time
(ms) their lease ends. Taking a slot first drops expired leases, then adds one if fewer than
`limit` are live, atomically (one Lua script). Every instance renews the leases of its own
connections every `ttl / 3` seconds; an instance that crashes stops renewing, so its
connections stop counting after at most `ttl` seconds.

Renewing re-adds a lease that is missing, so that after Redis lost its data (a restart without
persistence) the live connections count again within `ttl / 3`, instead of letting each user
open up to the limit anew. A connection released while its renewal was in flight could be
re-added that way; renewal removes such leases again once it returns.

A killed instance's leases would count for up to `ttl` (30 s), long enough for its users'
clients to spend their reconnect attempts on `too_many_connections`. So each instance also
keeps a liveness key `<prefix>:instance:<id>` with a short expiry (`instance_ttl`, 3 s),
refreshed every `instance_ttl / 3`, and a lease is named `<instance id>:<connection id>`:
taking a slot drops the leases of instances whose liveness key is gone. A live instance that
stalls past `instance_ttl` loses its leases only until its next refresh, which finds its key
lapsed and renews (re-adds) every lease at once.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from redis.asyncio import Redis

from bugstream.background import BackgroundLoop
from bugstream.bus.redis_client import redis_client

log = logging.getLogger(__name__)

# KEYS[1]: the user's leases, KEYS[2]: this instance's liveness key. ARGV: lease name, limit,
# lease ms, liveness key prefix, liveness ms. Leases of instances whose liveness key is gone
# are dropped (a standalone Redis lets a script read keys it was not given).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[5]))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for _, lease in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local instance = string.match(lease, '^([^:]+):')
  if instance and redis.call('EXISTS', ARGV[4] .. instance) == 0 then
    redis.call('ZREM', KEYS[1], lease)
  end
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[1]))
end
return #KEYS
"""


class RedisSlots(BackgroundLoop):
    def __init__(
        self,
        redis: Redis,
        *,
        ttl: float = 30.0,
        instance_ttl: float = 3.0,
        prefix: str = "bugstream",
    ) -> None:
        super().__init__(
            "bugstream-slot-leases",
            self.keep_alive,
            interval=min(ttl, instance_ttl) / 3,
            log=log,
            failure="renewing connection leases failed",
            first_after_interval=True,
        )
        self._redis = redis
        self._ttl = ttl
        self._ttl_ms = int(ttl * 1000)
        self._instance_ms = int(instance_ttl * 1000)
        self._prefix = prefix
        self.instance_id = secrets.token_hex(6)
        self._alive_key = f"{prefix}:instance:{self.instance_id}"
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._held: dict[str, int] = {}  # connection id -> user id, on this instance
        self._renewed_at = time.monotonic()
        self._owns_client = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisSlots:
        """Slots on a Redis client of their own (closed by `stop`), retrying on broken
        connections as the event log's does: after a Redis restart the first command on
        each pooled connection would fail, and a connection would be refused for it."""
        slots = cls(redis_client(url, max_connections=16), **options)
        slots._owns_client = True
        return slots

    def _key(self, user_id: int) -> str:
        return f"{self._prefix}:conns:{user_id}"

    def _lease(self, connection_id: str) -> str:
        return f"{self.instance_id}:{connection_id}"

    async def acquire(self, user_id: int, connection_id: str, limit: int) -> bool:
        taken = await self._acquire(
            keys=[self._key(user_id), self._alive_key],
            args=[
                self._lease(connection_id),
                limit,
                self._ttl_ms,
                f"{self._prefix}:instance:",
                self._instance_ms,
            ],
        )
        if taken:
            self._held[connection_id] = user_id
        return bool(taken)

    async def release(self, user_id: int, connection_id: str) -> None:
        self._held.pop(connection_id, None)
        await self._redis.zrem(self._key(user_id), self._lease(connection_id))

    async def keep_alive(self) -> None:
        """Refresh this instance's liveness key, and renew every lease every `ttl / 3`, or at
        once when the key had lapsed (the instance stalled: others dropped its leases)."""
        previous = await self._redis.set(self._alive_key, "1", px=self._instance_ms, get=True)
        if previous is None or time.monotonic() - self._renewed_at >= self._ttl / 3:
            await self.renew()

    async def renew(self) -> None:
        """Extend the leases of every connection this instance holds (re-adding lost ones)."""
        self._renewed_at = time.monotonic()
        held = list(self._held.items())
        for start in range(0, len(held), 500):
            chunk = held[start : start + 500]
            keys = [self._key(user_id) for _conn, user_id in chunk]
            leases = [self._lease(conn) for conn, _ in chunk]
            await self._renew(keys=keys, args=[self._ttl_ms, *leases])
            for conn, user_id in chunk:
                if conn not in self._held:  # released meanwhile: undo its re-added lease
                    await self._redis.zrem(self._key(user_id), self._lease(conn))

    async def stop(self) -> None:
        await super().stop()
        try:
            # Gone for good: the other instances need not wait for the key to expire.
            await self._redis.delete(self._alive_key)
        except Exception:
            log.warning("could not remove this instance's liveness key; it expires by itself")
        if self._owns_client:
            await self._redis.aclose()
