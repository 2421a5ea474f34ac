"""Presence across the cluster, in Redis, with leases that end with their instance.

Keys (under `<prefix>:presence:`):

- `conns:<instance>`: a hash per instance, connection id -> its entry (JSON: user, name,
  projects, viewed bug report and its project);
- `instances`: the instances that have entries;
- `online`: user id -> their open connections, across the cluster;
- `viewing:<project>`: `<bug report id>:<user id>` -> that user's connections viewing it;
- `alive:<instance>`: the instance's liveness key, set with a short expiry
  (`BUGSTREAM_WS_INSTANCE_TTL_SECONDS`, 3 s) and refreshed every third of it, as the
  connection slots do (bus/redis_slots.py).

Each change is one Lua script: it updates the entry and the counts atomically, so exactly one
caller sees a count go 0 -> 1 (`joined`, `viewing`) or 1 -> 0 (`left`, `stopped_viewing`), and
the script publishes those transitions on the channel `<prefix>:presence`, which every instance
subscribes to and hands to its gateway (its own changes come back the same way).

An instance killed with SIGKILL leaves its entries behind: every instance, on each refresh,
looks for instances in `instances` whose liveness key is gone and reaps them (a script: each of
their entries is removed as a disconnect would, the transitions published once, by whichever
instance got there first). So a dead instance's users are `left` within about the instance TTL
plus a refresh. An instance that stalled past its TTL and was reaped finds its own key lapsed
at its next refresh and writes its live entries again (its users are `joined` again).

Pub/sub is at-most-once: an instance that loses its Redis connection misses the transitions
published meanwhile. Counts and entries, which the REST answer comes from, stay right; when
the channel is back the instance is told (`on_resync`) and tells its clients to read the
snapshot again (gateway/presence.py), so no view stays stale without their knowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Collection
from dataclasses import replace
from typing import Any

import orjson
from redis.asyncio import Redis

from bugstream.background import BackgroundLoop
from bugstream.bus.presence import OnChange, OnResync, PresenceEntry
from bugstream.bus.redis_client import redis_client
from bugstream.domain.presence import PresenceChange, PresenceEvent

log = logging.getLogger(__name__)

# ARGV[1] is the key prefix (`<prefix>:presence:`) in every script. A standalone Redis lets a
# script touch keys it was not given (as bus/redis_slots.py relies on too).
_COMMON = """
local P = ARGV[1]
local out = {}
local function view_delta(e, delta)
  if not e.b then return end
  local key = P .. 'viewing:' .. e.bp
  local field = e.b .. ':' .. e.u
  local n = redis.call('HINCRBY', key, field, delta)
  if n <= 0 then
    redis.call('HDEL', key, field)
    if delta < 0 then table.insert(out, {'stopped_viewing', e.u, e.n, {e.bp}, e.b}) end
  elseif n == 1 and delta > 0 then
    table.insert(out, {'viewing', e.u, e.n, {e.bp}, e.b})
  end
end
local function online_delta(e, delta)
  local n = redis.call('HINCRBY', P .. 'online', e.u, delta)
  if n <= 0 then
    redis.call('HDEL', P .. 'online', e.u)
    if delta < 0 then table.insert(out, {'left', e.u, e.n, e.p}) end
  elseif n == 1 and delta > 0 then
    table.insert(out, {'joined', e.u, e.n, e.p})
  end
end
local function drop(instance, conn)
  local key = P .. 'conns:' .. instance
  local raw = redis.call('HGET', key, conn)
  if not raw then return end
  local e = cjson.decode(raw)
  view_delta(e, -1)
  online_delta(e, -1)
  redis.call('HDEL', key, conn)
end
-- The entry of connection ARGV[4] of instance ARGV[3] (nil: none), and writing it back.
local function load_entry()
  local raw = redis.call('HGET', P .. 'conns:' .. ARGV[3], ARGV[4])
  return raw and cjson.decode(raw) or nil
end
local function save_entry(e)
  redis.call('HSET', P .. 'conns:' .. ARGV[3], ARGV[4], cjson.encode(e))
end
local function publish()
  if #out > 0 then redis.call('PUBLISH', ARGV[2], cjson.encode(out)) end
  return #out
end
"""

# ARGV: prefix, channel, instance, connection id, entry JSON. Writing an entry that exists (an
# instance re-asserting its entries after a stall) changes no connection count.
_CONNECT = (
    _COMMON
    + """
local key = P .. 'conns:' .. ARGV[3]
local e = cjson.decode(ARGV[5])
local old = redis.call('HGET', key, ARGV[4])
redis.call('SADD', P .. 'instances', ARGV[3])
redis.call('HSET', key, ARGV[4], ARGV[5])
if old then
  local o = cjson.decode(old)
  if o.b ~= e.b then view_delta(o, -1); view_delta(e, 1) end
else
  online_delta(e, 1)
  view_delta(e, 1)
end
return publish()
"""
)

# ARGV: prefix, channel, instance, connection id, bug report id ('' for none), its project.
_VIEW = (
    _COMMON
    + """
local e = load_entry()
if not e then return 0 end
local bug = tonumber(ARGV[5])
if e.b == bug then return 0 end
view_delta(e, -1)
e.b = bug
e.bp = tonumber(ARGV[6])
view_delta(e, 1)
save_entry(e)
return publish()
"""
)

# ARGV: prefix, channel, instance, connection id.
_DISCONNECT = _COMMON + "drop(ARGV[3], ARGV[4])\nreturn publish()\n"

# ARGV: prefix, channel, instance, connection id, the user's projects (a JSON list).
_REGROUP = (
    _COMMON
    + """
local e = load_entry()
if not e then return 0 end
e.p = cjson.decode(ARGV[5])
save_entry(e)
return 0
"""
)

# ARGV: prefix, channel, instance. Only if its liveness key is (still) gone.
_REAP = (
    _COMMON
    + """
if redis.call('EXISTS', P .. 'alive:' .. ARGV[3]) == 1 then return 0 end
local key = P .. 'conns:' .. ARGV[3]
for _, conn in ipairs(redis.call('HKEYS', key)) do drop(ARGV[3], conn) end
redis.call('DEL', key)
redis.call('SREM', P .. 'instances', ARGV[3])
return publish()
"""
)


class RedisPresence:
    def __init__(
        self, redis: Redis, *, instance_ttl: float = 3.0, prefix: str = "bugstream"
    ) -> None:
        self._leases = BackgroundLoop(
            "bugstream-presence-leases",
            self.keep_alive,
            interval=instance_ttl / 3,
            log=log,
            failure="refreshing presence leases failed",
        )
        self._redis = redis
        self._keys = f"{prefix}:presence:"
        self._channel = f"{prefix}:presence"
        self._instance_ms = int(instance_ttl * 1000)
        self.instance_id = secrets.token_hex(6)
        self._alive_key = f"{self._keys}alive:{self.instance_id}"
        self._connect = redis.register_script(_CONNECT)
        self._view = redis.register_script(_VIEW)
        self._disconnect = redis.register_script(_DISCONNECT)
        self._reap = redis.register_script(_REAP)
        self._regroup = redis.register_script(_REGROUP)
        self._local: dict[str, PresenceEntry] = {}  # this instance's entries, to re-assert
        self._on_change: OnChange = lambda changes: None
        self._on_resync: OnResync = lambda: None
        self._listener: asyncio.Task[None] | None = None
        self._owns_client = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisPresence:
        presence = cls(redis_client(url, max_connections=16), **options)
        presence._owns_client = True
        return presence

    async def start(self, on_change: OnChange, on_resync: OnResync) -> None:
        self._on_change = on_change
        self._on_resync = on_resync
        subscribed = asyncio.get_running_loop().create_future()
        self._listener = asyncio.create_task(
            self._listen(subscribed), name="bugstream-presence-channel"
        )
        # Transitions published before the subscription would be lost to this instance.
        async with asyncio.timeout(10):
            await asyncio.shield(subscribed)
        await self.keep_alive()
        self._leases.start()

    async def stop(self) -> None:
        await self._leases.stop()
        try:
            # Gone for good: the others need not wait for the key to expire; reap our own.
            await self._redis.delete(self._alive_key)
            await self._run(self._reap, self.instance_id)
        except Exception:
            log.warning("could not remove this instance's presence; others reap it shortly")
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
        if self._owns_client:
            await self._redis.aclose()

    async def connect(self, connection_id: str, entry: PresenceEntry) -> None:
        self._local[connection_id] = entry
        await self._run(self._connect, self.instance_id, connection_id, _encode(entry))

    async def view(
        self, connection_id: str, bug_report_id: int | None, project_id: int | None
    ) -> None:
        entry = self._local.get(connection_id)
        if entry is None:
            return
        self._local[connection_id] = replace(
            entry, bug_report_id=bug_report_id, bug_project_id=project_id
        )
        bug = "" if bug_report_id is None else str(bug_report_id)
        project = "" if project_id is None else str(project_id)
        await self._run(self._view, self.instance_id, connection_id, bug, project)

    async def disconnect(self, connection_id: str) -> None:
        self._local.pop(connection_id, None)
        await self._run(self._disconnect, self.instance_id, connection_id)

    async def regroup(self, connection_id: str, project_ids: tuple[int, ...]) -> None:
        entry = self._local.get(connection_id)
        if entry is None:
            return
        self._local[connection_id] = replace(entry, project_ids=project_ids)
        projects = orjson.dumps(list(project_ids)).decode()
        await self._run(self._regroup, self.instance_id, connection_id, projects)

    async def connections(self, user_ids: Collection[int]) -> dict[int, int]:
        ids = list(user_ids)
        if not ids:
            return {}
        counts = await self._redis.hmget(f"{self._keys}online", [str(u) for u in ids])
        return {u: int(c) for u, c in zip(ids, counts, strict=True) if c and int(c) > 0}

    async def viewers(self, project_id: int) -> dict[int, set[int]]:
        fields = await self._redis.hgetall(f"{self._keys}viewing:{project_id}")
        viewing: dict[int, set[int]] = {}
        for field, count in fields.items():
            if int(count) > 0:
                bug, _, user = _text(field).partition(":")
                viewing.setdefault(int(bug), set()).add(int(user))
        return viewing

    async def keep_alive(self) -> None:
        """Refresh this instance's liveness key (re-asserting every entry when it had lapsed:
        the others may have reaped them), and reap instances whose key is gone."""
        previous = await self._redis.set(self._alive_key, "1", px=self._instance_ms, get=True)
        if previous is None:
            for connection_id, entry in list(self._local.items()):
                await self._run(self._connect, self.instance_id, connection_id, _encode(entry))
        instances = await self._redis.smembers(f"{self._keys}instances")
        for raw in instances:
            instance = _text(raw)
            if instance != self.instance_id and not await self._redis.exists(
                f"{self._keys}alive:{instance}"
            ):
                reaped = await self._run(self._reap, instance)
                log.warning("presence: instance %s is gone; %d changes", instance, reaped)

    async def _run(self, script: Any, *args: str) -> int:
        return int(await script(keys=[], args=[self._keys, self._channel, *args]))

    async def _listen(self, subscribed: asyncio.Future[None]) -> None:
        """Hand every published transition to `on_change`, resubscribing after failures."""
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        kind = message.get("type")
                        if kind == "message":
                            self._deliver(message["data"])
                        elif kind == "subscribe":
                            self._subscribed(subscribed)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("presence channel failed; resubscribing")
                await asyncio.sleep(0.5)

    def _subscribed(self, first: asyncio.Future[None]) -> None:
        """Redis confirmed the subscription: the first time, or again after the connection
        was lost (a new pubsub here, or redis-py's own reconnect, which subscribes again
        without a word): what was published meanwhile is lost to this instance."""
        if not first.done():
            first.set_result(None)
            return
        log.warning("presence channel back; clients are told to resync")
        self._on_resync()

    def _deliver(self, data: bytes) -> None:
        try:
            changes = [_decode(item) for item in orjson.loads(data)]
        except (ValueError, TypeError, IndexError):
            log.warning("presence: ignored a malformed message on %s", self._channel)
            return
        self._on_change(changes)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encode(entry: PresenceEntry) -> str:
    data: dict[str, Any] = {"u": entry.user_id, "n": entry.username, "p": list(entry.project_ids)}
    if entry.bug_report_id is not None:
        data["b"] = entry.bug_report_id
        data["bp"] = entry.bug_project_id
    return orjson.dumps(data).decode()


def _decode(item: list[Any]) -> PresenceChange:
    # cjson encodes an empty list as {}; numbers may come back as floats.
    projects = item[3] if isinstance(item[3], list) else []
    bug = int(item[4]) if len(item) > 4 else None
    return PresenceChange(
        PresenceEvent(item[0]), int(item[1]), str(item[2]), tuple(int(p) for p in projects), bug
    )
