"""The Redis Streams bus: one ordered, bounded, replayable event log shared by all instances.

Layout (keys under `prefix`, default `bugstream`):
- `<prefix>:events`: the stream. Entry id `<event_id>-0`, fields `e` (the event as JSON) and
  `t` (Redis time in ms when added, for age-based retention).
- `<prefix>:last`: the newest event id in the log (publishing is idempotent against it).
- `<prefix>:trimmed`: every event up to this id has been dropped by retention (or predates
  the log); a reader asking for events after an older id gets `GapError`.

Publishing runs as one Lua script, so concurrent relays on several instances cannot
interleave: ids at or below `last` are dropped as duplicates, and retention (by count and
by age) trims the oldest entries and advances `trimmed` in the same step.

If Redis loses its data (a restart without persistence), `last` is gone; `rebase` then starts
the log again after a given id and the relays republish from the database outbox, so nothing
committed is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from bugstream.bus.base import GapError, NoBase
from bugstream.bus.redis_client import redis_client
from bugstream.domain.events import Event, EventName, EventType

_PUBLISH = """
local last = tonumber(redis.call('GET', KEYS[2]) or '-1')
if last < 0 then
  return redis.error_reply('NOBASE the event log has no base; rebase first')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 3, #ARGV, 2 do
  local id = tonumber(ARGV[i])
  if id > last then
    redis.call('XADD', KEYS[1], ARGV[i] .. '-0', 'e', ARGV[i + 1], 't', now)
    last = id
  end
end
redis.call('SET', KEYS[2], last)
local dropped = -1
local maxlen = tonumber(ARGV[1])
local len = redis.call('XLEN', KEYS[1])
if len > maxlen then
  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - maxlen)
  dropped = tonumber(string.match(old[#old][1], '^(%d+)'))
end
local maxage = tonumber(ARGV[2])
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 100)
for _, entry in ipairs(oldest) do
  local id = tonumber(string.match(entry[1], '^(%d+)'))
  if now - tonumber(entry[2][4]) > maxage and id ~= last then
    if id > dropped then dropped = id end
  else
    break
  end
end
if dropped >= 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', (dropped + 1) .. '-0')
  local prev = tonumber(redis.call('GET', KEYS[3]) or '0')
  if dropped > prev then redis.call('SET', KEYS[3], dropped) end
end
return last
"""

_REBASE = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return tonumber(redis.call('GET', KEYS[2]))
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
return tonumber(ARGV[1])
"""


def _encode(event: Event) -> bytes:
    return orjson.dumps(
        {
            "i": event.event_id,
            "t": event.type.value,
            "e": event.event.value,
            "p": event.payload,
            "pr": event.project_id,
            "u": event.user_id,
            "c": event.committed_at,
        }
    )


def _decode(data: bytes) -> Event:
    raw: dict[str, Any] = orjson.loads(data)
    return Event(
        event_id=int(raw["i"]),
        type=EventType(raw["t"]),
        event=EventName(raw["e"]),
        payload=raw["p"],
        project_id=raw["pr"],
        user_id=raw["u"],
        committed_at=float(raw.get("c", 0.0)),
    )


class RedisBus:
    def __init__(
        self,
        url: str,
        *,
        max_events: int = 10_000,
        max_age: float = 3600.0,
        prefix: str = "bugstream",
        block_ms: int = 1000,
        max_connections: int = 64,
        pool_timeout: float = 10.0,
    ) -> None:
        # Retries on broken connections, a blocking pool (bus/redis_client.py).
        self._redis: Redis = redis_client(
            url, max_connections=max_connections, pool_timeout=pool_timeout
        )
        self._stream = f"{prefix}:events"
        self._last = f"{prefix}:last"
        self._trimmed = f"{prefix}:trimmed"
        self._max_events = max_events
        self._max_age_ms = int(max_age * 1000)
        self._block_ms = block_ms
        self._publish = self._redis.register_script(_PUBLISH)
        self._rebase = self._redis.register_script(_REBASE)
        self._closed = False

    @property
    def redis(self) -> Redis:
        return self._redis

    async def start(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        self._closed = True
        await self._redis.aclose()

    async def rebase(self, start_after: int) -> int:
        """Start an empty log after `start_after` (no-op if the log exists); its last id."""
        keys = [self._stream, self._last, self._trimmed]
        return int(await self._rebase(keys=keys, args=[start_after]))

    async def has_base(self) -> bool:
        return bool(await self._redis.exists(self._last))

    async def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        args: list[Any] = [self._max_events, self._max_age_ms]
        for event in events:
            args += [event.event_id, _encode(event)]
        try:
            await self._publish(keys=[self._stream, self._last, self._trimmed], args=args)
        except Exception as exc:
            if "NOBASE" in str(exc):
                raise NoBase(str(exc)) from None
            raise

    async def position(self) -> int | None:
        # The "last" key is the base: gone when Redis lost its data.
        value = await self._redis.get(self._last)
        return int(value) if value is not None else None

    async def last_event_id(self) -> int:
        value = await self._redis.get(self._last)
        return int(value) if value is not None else 0

    async def _trimmed_through(self) -> int:
        value = await self._redis.get(self._trimmed)
        return int(value) if value is not None else 0

    async def oldest_retained_id(self) -> int:
        return await self._trimmed_through() + 1

    async def replay(self, after_id: int, limit: int = 1000) -> list[Event]:
        trimmed = await self._trimmed_through()
        if after_id < trimmed:
            raise GapError(after_id, trimmed + 1)
        entries: Any = await self._redis.xrange(self._stream, f"({after_id}-0", "+", count=limit)
        return [_decode(fields[b"e"]) for _id, fields in entries]

    async def subscribe(self, after_id: int) -> AsyncIterator[list[Event]]:
        position = after_id
        while not self._closed:
            reply: Any = await self._redis.xread(
                {self._stream: f"{position}-0"}, count=1000, block=self._block_ms
            )
            # Checked after the read: retention may have run meanwhile.
            trimmed = await self._trimmed_through()
            if position < trimmed:
                raise GapError(position, trimmed + 1)
            if not reply:
                continue
            batch = [_decode(fields[b"e"]) for _id, fields in reply[0][1]]
            if batch:
                position = batch[-1].event_id
                yield batch
