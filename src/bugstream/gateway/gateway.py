"""The gateway: opens, serves and closes client connections, independent of the listener.

A listener adapter calls, per connection: `check_upgrade` on the HTTP request, `open` once
the WebSocket handshake is done, `receive` for each complete message, `activity` for any
other frame (pongs), and `closed` when the socket is gone. Everything sent to clients goes
through the hub's per-connection queues.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from bugstream.auth.tokens import TokenConfig, verify_token
from bugstream.background import cancel_and_wait
from bugstream.bus.base import Bus, GapError
from bugstream.domain.errors import (
    AuthError,
    BugstreamError,
    Conflict,
    ErrorCode,
    FieldError,
    Forbidden,
    ValidationFailed,
)
from bugstream.domain.protocol import ClientMessage, CloseCode, Command, ServerMessage
from bugstream.gateway.abuse import AbuseMonitor
from bugstream.gateway.access_loader import AccessLoader
from bugstream.gateway.commands import COMMANDS, validate_payload
from bugstream.gateway.config import GatewayConfig
from bugstream.gateway.connection import ClientInfo, Connection, FrameSink
from bugstream.gateway.handshake import Refusal, UpgradeRequest, check_upgrade
from bugstream.gateway.hub import AccessRevoked, Hub, SnapshotTooOld
from bugstream.gateway.messages import (
    Inbound,
    MessageError,
    RequestId,
    ack_frame,
    error_frame,
    message_frame,
    parse,
    server_time,
)
from bugstream.gateway.ratelimit import RateLimiter
from bugstream.gateway.replay_cache import ReplayCache
from bugstream.gateway.slots import ConnectionSlots, MemorySlots
from bugstream.gateway.subscriptions import apply_subscription
from bugstream.gateway.telemetry import NullTelemetry, Telemetry
from bugstream.services.access_snapshot import AccessSnapshot, load_access
from bugstream.services.context import Actor, ServiceContext
from bugstream.services.history import OutboxHistory
from bugstream.services.users import active_user

log = logging.getLogger("bugstream.gateway")
security_log = logging.getLogger("bugstream.security")

_CLOSE_FOR_AUTH = {
    ErrorCode.TOKEN_EXPIRED: CloseCode.TOKEN_EXPIRED,
    ErrorCode.INVALID_TOKEN: CloseCode.INVALID_TOKEN,
}


class Gateway:
    def __init__(
        self,
        *,
        ctx: ServiceContext,
        tokens: TokenConfig,
        bus: Bus,
        config: GatewayConfig,
        position: int,
        slots: ConnectionSlots | None = None,
        telemetry: Telemetry | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self.tokens = tokens
        self.bus = bus
        self.config = config
        self.clock = clock
        self.wall_clock = wall_clock
        self.slots = slots or MemorySlots()
        self.telemetry: Telemetry = telemetry or NullTelemetry()
        self.hub = Hub(
            position=position,
            revoke=self.revoke,
            max_backlog_bytes=config.max_backlog_bytes,
            conflate_backlog_bytes=config.conflate_backlog_bytes,
            slow_consumer_seconds=config.slow_consumer_seconds,
            telemetry=self.telemetry,
            clock=clock,
        )
        self.limiter = RateLimiter(config.rate_capacity, config.rate_refill_per_second, clock)
        self.replays = ReplayCache(bus, durable=OutboxHistory(ctx))
        self.load_access = AccessLoader(
            lambda user_id: load_access(ctx, user_id), concurrency=config.access_load_concurrency
        )
        self.abuse = AbuseMonitor(
            threshold=config.abuse_threshold,
            window=config.abuse_window,
            block_seconds=config.block_seconds,
            clock=clock,
            on_security_event=self._security_event,
        )
        self._work: dict[Connection, deque[tuple[RequestId, Coroutine[Any, Any, None]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._consumer: asyncio.Task[None] | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self.accepting = True
        self._pending_opens = 0

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._consumer = asyncio.create_task(self._consume(), name="bugstream-hub")
        self._schedule_sweep()

    async def _consume(self) -> None:
        while True:
            try:
                async for batch in self.bus.subscribe(self.hub.position):
                    self.hub.dispatch(batch)
                return
            except asyncio.CancelledError:
                raise
            except GapError as gap:
                # The shared log no longer has events this instance has not delivered (e.g.
                # Redis lost its data and the rebuilt window starts later). Its clients cannot
                # get them here: send them away to resume (they then get resync_required), and
                # go on from where the log starts.
                log.error("the event log skipped past this instance (%s); clients must resync", gap)
                for conn in self.hub.connections():
                    self.revoke(conn, CloseCode.GOING_AWAY, "events were lost; resume to resync")
                self.hub.restart_at(gap.oldest_retained_id - 1)
            except Exception:
                log.exception("event consumer failed; resubscribing")
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        """Close every connection with 1001 (clients reconnect elsewhere), then stop."""
        self.accepting = False
        for conn in self.hub.connections():
            self.revoke(conn, CloseCode.GOING_AWAY, "server shutting down")
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await cancel_and_wait(self._consumer)
        self._consumer = None
        for task in list(self._tasks):
            task.cancel()

    # ---- opening --------------------------------------------------------------------------

    def check_upgrade(self, request: UpgradeRequest) -> Refusal | None:
        """Whether to refuse the upgrade with an HTTP status (counted by that status)."""
        refusal = self._upgrade_refusal(request)
        if refusal is not None:
            self.telemetry.connection_refused(f"http_{refusal.status}")
        return refusal

    def _upgrade_refusal(self, request: UpgradeRequest) -> Refusal | None:
        refusal = check_upgrade(self.config, request)
        if refusal is not None:
            return refusal
        if not self.accepting:
            return Refusal(503, "server shutting down")
        if self._pending_opens >= self.config.max_pending_handshakes:
            return Refusal(503, "too many connections opening at once; retry shortly")
        blocked = self.abuse.blocked_for(f"ip:{request.client_address(self.config)}")
        if blocked:
            return Refusal(429, f"too many violations; blocked for {blocked:.0f} s")
        return None

    async def open(self, sink: FrameSink, request: UpgradeRequest) -> Connection | None:
        """Authenticate and register a new socket; None if it was refused (and closed)."""
        self._pending_opens += 1
        try:
            return await self._open(sink, request)
        finally:
            self._pending_opens -= 1

    async def _open(self, sink: FrameSink, request: UpgradeRequest) -> Connection | None:
        address = request.client_address(self.config)
        token = request.token()
        try:
            if token is None:
                raise AuthError("a token is required (?token= or Authorization: Bearer)")
            claims = verify_token(self.tokens, token)
            # A user already connected here needs no database round trip: the hub's record of
            # them is current (reconnect storms are mostly such users).
            known = self.hub.known_user(claims.user_id)
            snapshot = None if known is not None else await self.load_access(claims.user_id)
        except AuthError as exc:
            self.telemetry.auth_failed(exc.code.value)
            security_log.info(
                "authentication failed",
                extra={"remote": address, "code": exc.code.value, "reason": exc.message},
            )
            self.abuse.strike(f"ip:{address}", exc.code.value, {"remote": address})
            self._refuse(sink, exc, _CLOSE_FOR_AUTH.get(exc.code, CloseCode.INVALID_TOKEN))
            return None
        if snapshot is not None:
            user_id, username, role = snapshot.user.id, snapshot.user.username, snapshot.user.role
        else:
            assert known is not None
            user_id, username, role = claims.user_id, known.username, known.role
        if self.abuse.blocked_for(f"user:{user_id}"):
            self._refuse(sink, BugstreamError("blocked", code=ErrorCode.BLOCKED), CloseCode.BLOCKED)
            return None
        if self.hub.connection_count >= self.config.max_connections:
            error = BugstreamError(
                "this server is at its connection limit; retry later",
                code=ErrorCode.SERVICE_UNAVAILABLE,
            )
            self._refuse(sink, error, CloseCode.SERVER_FULL)
            return None
        info = ClientInfo(
            connection_id=secrets.token_hex(8),
            user_id=user_id,
            username=username,
            remote_address=address,
            connected_at=self.wall_clock(),
        )
        limit = self.config.max_connections_per_user
        if not await self.slots.acquire(user_id, info.connection_id, limit):
            error = BugstreamError(
                f"at most {limit} connections per user",
                code=ErrorCode.TOO_MANY_CONNECTIONS,
                details={"limit": limit},
            )
            self._refuse(sink, error, CloseCode.TOO_MANY_CONNECTIONS)
            return None
        conn = Connection(
            info, role, sink, now=self.clock(), token_expires_at=claims.expires_at.timestamp()
        )
        try:
            position = await self._register(conn, snapshot)
        except BaseException as exc:
            # Refused, or the socket went away meanwhile: give the slot back.
            await self.slots.release(user_id, info.connection_id)
            if isinstance(exc, AccessRevoked | AuthError):
                self._refuse(sink, AuthError("account is not active"), CloseCode.INVALID_TOKEN)
                return None
            raise
        resume_from = _last_event_id(request.query.get("last_event_id"))
        if resume_from is not None:
            self.hub.hold(conn)  # live events wait until the replay is out
        self.hub.send(conn, message_frame(ServerMessage.WELCOME, self._welcome(conn, position)))
        if resume_from is not None:
            self._queue(conn, None, self._resume(conn, resume_from, upto=position))
        self.telemetry.connection_opened()
        log.info(
            "connected",
            extra={
                "connection_id": info.connection_id,
                "user_id": user_id,
                "remote": address,
                "resume_from": resume_from,
            },
        )
        return conn

    async def _register(self, conn: Connection, snapshot: AccessSnapshot | None) -> int:
        while True:
            if snapshot is None and self.hub.known_user(conn.user_id) is None:
                # Their other connections closed while this one was being opened.
                snapshot = await self.load_access(conn.user_id)
            try:
                if snapshot is None:
                    return self.hub.register_known(conn)
                return self.hub.register(
                    conn, snapshot.user.role, snapshot.project_ids, snapshot.as_of
                )
            except SnapshotTooOld:
                snapshot = await self.load_access(conn.user_id)

    def _welcome(self, conn: Connection, position: int) -> dict[str, Any]:
        config = self.config
        return {
            "connection_id": conn.info.connection_id,
            "user": {"id": conn.user_id, "username": conn.info.username, "role": conn.role.value},
            "server_time": server_time(),
            "latest_event_id": position,
            "token_expires_at": _iso(conn.token_expires_at),
            "heartbeat": {"ping_interval": config.ping_interval, "timeout": config.idle_timeout},
            "limits": {
                "max_message_bytes": config.max_message_bytes,
                "max_connections_per_user": config.max_connections_per_user,
                "rate_limit": {
                    "capacity": config.rate_capacity,
                    "refill_per_second": config.rate_refill_per_second,
                },
            },
            "subscription": conn.subscription.describe(),
        }

    def _refuse(self, sink: FrameSink, error: BugstreamError, code: CloseCode) -> None:
        self.telemetry.connection_refused(error.code.value)
        self.telemetry.error(error.code.value)
        sink.write(error_frame(error))
        sink.close(int(code), error.message[:120])

    # ---- serving --------------------------------------------------------------------------

    def activity(self, conn: Connection) -> None:
        conn.last_activity = self.clock()

    def receive(self, conn: Connection, data: bytes | str) -> None:
        """Handle one complete inbound message."""
        if conn.closed:
            return
        conn.last_activity = self.clock()
        request_id: RequestId = None
        try:
            retry_after = self.limiter.take(conn.user_id)
            if retry_after:
                self.telemetry.message_in("rate_limited")
                self.telemetry.rate_limit_hit()
                self._strike(conn, "rate_limited")
                # Echo the refused command's request id, so the client can fail that request.
                request_id = _peek_request_id(data, self.config.max_message_bytes)
                raise BugstreamError(
                    "message rate limit exceeded",
                    code=ErrorCode.RATE_LIMITED,
                    details={"retry_after": round(retry_after, 3)},
                )
            try:
                message = parse(data, self.config.max_message_bytes)
            except MessageError as exc:
                # Counted as received, or the error rate (errors / messages) overstates.
                self.telemetry.message_in("invalid")
                if exc.code is ErrorCode.MESSAGE_TOO_LARGE:
                    self._strike(conn, "message_too_large")
                raise
            request_id = message.request_id
            kind = message.type if message.type in _KNOWN_TYPES else "unknown"
            self.telemetry.message_in(kind)
            self._dispatch(conn, message)
            if log.isEnabledFor(logging.DEBUG):  # a line per message: only when asked for
                log.debug(
                    "message",
                    extra={
                        "connection_id": conn.info.connection_id,
                        "user_id": conn.user_id,
                        "type": kind,
                        "size": len(data),
                        "request_id": request_id,
                        "outcome": "accepted",
                    },
                )
        except MessageError as exc:
            self._error(conn, exc, exc.request_id, size=len(data))
        except BugstreamError as exc:
            self._error(conn, exc, request_id, size=len(data))

    def _error(
        self,
        conn: Connection,
        error: BugstreamError,
        request_id: RequestId,
        *,
        size: int | None = None,
    ) -> None:
        self.telemetry.error(error.code.value)
        log.info(
            "message refused",
            extra={
                "connection_id": conn.info.connection_id,
                "user_id": conn.user_id,
                "size": size,
                "request_id": request_id,
                "outcome": error.code.value,
            },
        )
        self.hub.send(conn, error_frame(error, request_id))

    def _dispatch(self, conn: Connection, message: Inbound) -> None:
        kind = message.type
        if kind == ClientMessage.PING:
            self.hub.send(conn, message_frame(ServerMessage.PONG, {"server_time": server_time()}))
        elif kind == ClientMessage.AUTH:
            self._refresh_token(conn, message)
        elif kind == ClientMessage.RESUME:
            self._start_resume(conn, message)
        elif kind in (ClientMessage.SUBSCRIBE, ClientMessage.UNSUBSCRIBE):
            self._queue(conn, message.request_id, self._subscribe(conn, message))
        elif kind in COMMANDS:
            spec = COMMANDS[Command(kind)]
            payload = validate_payload(spec, message.payload)
            self._queue(conn, message.request_id, self._command(conn, message, spec.run, payload))
        else:
            raise MessageError(
                ErrorCode.UNKNOWN_EVENT_TYPE,
                f"unknown message type {kind[:64]!r}",
                message.request_id,
            )

    def _refresh_token(self, conn: Connection, message: Inbound) -> None:
        token = message.payload.get("token")
        if not isinstance(token, str) or not token:
            raise BugstreamError(
                "missing required fields: token",
                code=ErrorCode.MISSING_REQUIRED_FIELDS,
                details={"fields": ["token"]},
            )
        claims = verify_token(self.tokens, token)
        if claims.user_id != conn.user_id:
            raise Forbidden("the new token is for another user")
        conn.token_expires_at = claims.expires_at.timestamp()
        result = {"token_expires_at": _iso(conn.token_expires_at)}
        self.hub.send(conn, ack_frame(message.request_id, ClientMessage.AUTH.value, result))

    def _start_resume(self, conn: Connection, message: Inbound) -> None:
        after = message.payload.get("last_event_id")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValidationFailed(
                [FieldError("last_event_id", "int", "a non-negative integer is required")]
            )
        if conn.delivered_through or conn.held is not None:
            # Replaying older events now would put them after newer ones already sent.
            raise Conflict(
                "resume must come before any event is delivered; "
                "reconnect with ?last_event_id= instead"
            )
        self.hub.hold(conn)
        resume = self._resume(conn, after, upto=self.hub.position, request_id=message.request_id)
        self._queue(conn, message.request_id, resume)

    async def _resume(
        self, conn: Connection, after_id: int, *, upto: int, request_id: RequestId = None
    ) -> None:
        """Send every event in (after_id, upto] the client may see, then the held live ones.

        Events after `upto` were held back meanwhile, so the client sees no gap and no
        duplicate. An `after_id` beyond `upto` (this instance is behind the one the client
        left) skips the live events the client already has instead.
        """
        replayed = 0
        resync = False
        try:
            if after_id >= upto:
                conn.skip_through = max(conn.skip_through, after_id)
            else:
                cursor = after_id
                while cursor < upto:
                    batch = await self.replays.after(cursor, upto)
                    if not batch:
                        break
                    for event, item in batch:
                        if event.event_id > upto:
                            break
                        if self.hub.visible(conn, event):
                            # Handed over as the client drains: a client that does not read
                            # holds a write window, not the replay.
                            await self.hub.wait_drained(conn)
                            if conn.closed:
                                return
                            self.hub.send_outgoing(conn, item)
                            conn.delivered_through = event.event_id
                            replayed += 1
                    cursor = batch[-1][0].event_id
        except GapError as gap:
            resync = True
            self.hub.send(
                conn,
                message_frame(
                    ServerMessage.RESYNC_REQUIRED,
                    {
                        "code": ErrorCode.RESYNC_REQUIRED.value,
                        "message": "events after last_event_id are no longer kept; "
                        "refetch state over REST, then follow the live stream",
                        "last_event_id": after_id,
                        "oldest_event_id": gap.oldest_retained_id,
                        "latest_event_id": upto,
                    },
                ),
            )
            conn.delivered_through = max(conn.delivered_through, upto)
        except Exception:
            # The log is out of reach (e.g. Redis down). Going on with the live events would
            # silently skip the missed ones: close with a reconnect code; the client resumes.
            log.exception("replay failed")
            self.revoke(conn, CloseCode.INTERNAL_ERROR, "replay failed; reconnect and resume")
            return
        finally:
            self.hub.release(conn)
        self.telemetry.replay(replayed, resync)
        if request_id is not None:
            result = {"replayed": replayed, "resync_required": resync, "latest_event_id": upto}
            self.hub.send(conn, ack_frame(request_id, ClientMessage.RESUME.value, result))

    async def _subscribe(self, conn: Connection, message: Inbound) -> None:
        result = await apply_subscription(self.ctx, conn, message)
        self.hub.send(conn, ack_frame(message.request_id, message.type, result))

    async def _command(self, conn: Connection, message: Inbound, run: Any, payload: Any) -> None:
        user = await active_user(self.ctx, conn.user_id)
        result = await run(self.ctx, Actor(user_id=user.id, role=user.role), payload)
        self.hub.send(conn, ack_frame(message.request_id, message.type, result))

    def _queue(
        self, conn: Connection, request_id: RequestId, work: Coroutine[Any, Any, None]
    ) -> None:
        """Run a connection's async work one item at a time, in the order it arrived."""
        queue = self._work.get(conn)
        if queue is not None:
            queue.append((request_id, work))
            return
        self._work[conn] = deque([(request_id, work)])
        task = asyncio.create_task(self._drain_work(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_work(self, conn: Connection) -> None:
        queue = self._work[conn]
        try:
            while queue:
                request_id, work = queue.popleft()
                try:
                    await work
                except BugstreamError as exc:
                    self._error(conn, exc, request_id)
                except Exception:
                    log.exception("command failed")
                    error = BugstreamError("internal error", code=ErrorCode.INTERNAL_ERROR)
                    self._error(conn, error, request_id)
        finally:
            for _, work in queue:
                work.close()
            del self._work[conn]

    def _strike(self, conn: Connection, kind: str) -> None:
        context: dict[str, object] = {
            "connection_id": conn.info.connection_id,
            "user_id": conn.user_id,
            "remote": conn.info.remote_address,
        }
        blocked_user = self.abuse.strike(f"user:{conn.user_id}", kind, context)
        blocked_ip = self.abuse.strike(f"ip:{conn.info.remote_address}", kind, context)
        if blocked_user or blocked_ip:
            error = BugstreamError(
                "too many violations; temporarily blocked", code=ErrorCode.BLOCKED
            )
            self.hub.send(conn, error_frame(error))
            self.revoke(conn, CloseCode.BLOCKED, "blocked for abuse")

    # ---- closing --------------------------------------------------------------------------

    def revoke(self, conn: Connection, code: CloseCode, reason: str) -> None:
        """Close a connection from the server side (after flushing what is pending)."""
        if conn.closed:
            return
        if code is CloseCode.FORBIDDEN:
            self.hub.send(conn, error_frame(Forbidden(reason)))
        elif code is CloseCode.TOKEN_EXPIRED:
            error = AuthError("the token has expired", code=ErrorCode.TOKEN_EXPIRED)
            self.hub.send(conn, error_frame(error))
        if code is CloseCode.SLOW_CONSUMER:
            # It resumes from the log: what it did not take is not worth keeping.
            conn.pending = []
            conn.pending_bytes = 0
        else:
            self.hub.flush_now(conn)
        conn.closed = True
        conn.sink.close(int(code), reason)
        self.closed(conn, code.name.lower())

    def closed(self, conn: Connection, reason: str = "client_closed") -> None:
        """The socket is gone (either side closed it); `reason` says why, for logs/metrics."""
        if self.hub.connections_of(conn.user_id).count(conn) == 0:
            return  # already accounted for (revoked, then the socket went)
        conn.closed = True
        self.hub.unregister(conn)
        self.telemetry.connection_closed(reason)
        log.info(
            "disconnected",
            extra={
                "connection_id": conn.info.connection_id,
                "user_id": conn.user_id,
                "remote": conn.info.remote_address,
                "reason": reason,
                "duration_s": round(self.wall_clock() - conn.info.connected_at, 3),
            },
        )
        work = self._work.get(conn)
        if work is not None:
            for _, item in work:
                item.close()
            work.clear()
        task = asyncio.ensure_future(self.slots.release(conn.user_id, conn.info.connection_id))
        self._tasks.add(task)
        task.add_done_callback(self._released)
        if not self.hub.connections_of(conn.user_id):
            self.limiter.forget(conn.user_id)

    def _released(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The lease then expires on its own (BUGSTREAM_WS_SLOT_LEASE_SECONDS).
            log.warning("releasing a connection slot failed: %r", task.exception())

    # ---- heartbeat, token expiry ----------------------------------------------------------

    def _schedule_sweep(self) -> None:
        interval = min(1.0, self.config.ping_interval / 4, self.config.idle_timeout / 4)
        self._sweeper = asyncio.get_running_loop().call_later(interval, self._sweep)

    def _sweep(self) -> None:
        try:
            self._sweep_once()
        except Exception:
            # One failure must not end heartbeats and token expiry for good.
            log.exception("connection sweep failed; the next one runs as usual")
        finally:
            if self._sweeper is not None:  # None once stopped
                self._schedule_sweep()

    def _sweep_once(self) -> None:
        now = self.clock()
        wall = self.wall_clock()
        config = self.config
        for conn in self.hub.connections():
            if now - conn.last_activity > config.idle_timeout:
                self.revoke(conn, CloseCode.HEARTBEAT_TIMEOUT, "no heartbeat")
            elif wall >= conn.token_expires_at:
                self.revoke(conn, CloseCode.TOKEN_EXPIRED, "token expired")
            elif now - conn.last_ping >= config.ping_interval:
                conn.last_ping = now
                conn.sink.send_ping()
        self.hub.check_backlogs()
        self.abuse.sweep()

    def _security_event(self, kind: str, key: str, details: dict[str, object]) -> None:
        # One line per strike or block, with the fields an operator filters on.
        security_log.warning(
            "security %s", kind, extra={"security_event": kind, "key": key, **details}
        )


_KNOWN_TYPES = frozenset([*ClientMessage, *Command])


def _last_event_id(value: str | None) -> int | None:
    """The `last_event_id` query parameter; a malformed one is ignored (fresh start)."""
    if value is None or not value.isdigit():
        return None
    return int(value)


def _peek_request_id(data: bytes | str, max_bytes: int) -> RequestId:
    """The request id of a message that will not be handled, when it has a readable one."""
    try:
        return parse(data, max_bytes).request_id
    except MessageError as exc:
        return exc.request_id


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
