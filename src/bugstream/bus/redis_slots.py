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
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from bugstream.background import BackgroundLoop

log = logging.getLogger(__name__)

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
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
    def __init__(self, redis: Redis, *, ttl: float = 30.0, prefix: str = "bugstream") -> None:
        super().__init__(
            "bugstream-slot-leases",
            self.renew,
            interval=ttl / 3,
            log=log,
            failure="renewing connection leases failed",
            first_after_interval=True,
        )
        self._redis = redis
        self._ttl_ms = int(ttl * 1000)
        self._prefix = prefix
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._held: dict[str, int] = {}  # connection id -> user id, on this instance

    def _key(self, user_id: int) -> str:
        return f"{self._prefix}:conns:{user_id}"

    async def acquire(self, user_id: int, connection_id: str, limit: int) -> bool:
        taken = await self._acquire(
            keys=[self._key(user_id)], args=[connection_id, limit, self._ttl_ms]
        )
        if taken:
            self._held[connection_id] = user_id
        return bool(taken)

    async def release(self, user_id: int, connection_id: str) -> None:
        self._held.pop(connection_id, None)
        await self._redis.zrem(self._key(user_id), connection_id)

    async def renew(self) -> None:
        """Extend the leases of every connection this instance holds."""
        held = list(self._held.items())
        for start in range(0, len(held), 500):
            chunk = held[start : start + 500]
            keys = [self._key(user_id) for _conn, user_id in chunk]
            await self._renew(keys=keys, args=[self._ttl_ms, *[conn for conn, _ in chunk]])
            for conn, user_id in chunk:
                if conn not in self._held:  # released meanwhile: undo its re-added lease
                    await self._redis.zrem(self._key(user_id), conn)
