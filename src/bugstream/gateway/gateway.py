"""The gateway: the front of `/ws`, independent of the listener.

A listener adapter calls, per connection: `check_upgrade` on the HTTP request, `open` once
the WebSocket handshake is done, `receive` for each complete message, `activity` for any
other frame (pongs), and `closed` when the socket is gone. Everything sent to clients goes
through the hub's per-connection queues.

The work is in parts, each a module: opening a connection (`opening.Opener`), replaying what
a client missed (`replay.Replayer`), the heartbeat and expiry sweep (`sweeper.Sweeper`) and
each connection's queued work (`work.ConnectionWork`); this front wires them together,
handles inbound messages and closes connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from bugstream.auth.tokens import TokenConfig, verify_token
from bugstream.background import cancel_and_wait
from bugstream.bus.base import Bus, GapError
from bugstream.bus.presence import MemoryPresence, PresenceStore
from bugstream.bus.slots import ConnectionSlots, MemorySlots
from bugstream.bus.tickets import MemoryTickets
from bugstream.domain.errors import AuthError, BugstreamError, ErrorCode, Forbidden
from bugstream.domain.protocol import ClientMessage, CloseCode, Command, ServerMessage
from bugstream.domain.tickets import TicketLedger
from bugstream.gateway.abuse import AbuseMonitor
from bugstream.gateway.access_loader import AccessLoader
from bugstream.gateway.commands import COMMANDS, validate_payload
from bugstream.gateway.config import GatewayConfig
from bugstream.gateway.connection import Connection, FrameSink
from bugstream.gateway.handshake import Refusal, UpgradeRequest
from bugstream.gateway.history import StreamHistory
from bugstream.gateway.hub import Hub
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
from bugstream.gateway.opening import Opener, iso
from bugstream.gateway.presence import Presence
from bugstream.gateway.ratelimit import RateLimiter
from bugstream.gateway.replay import Replayer
from bugstream.gateway.replay_cache import ReplayCache
from bugstream.gateway.sse import SseSink
from bugstream.gateway.subscriptions import apply_subscription
from bugstream.gateway.sweeper import Sweeper
from bugstream.gateway.telemetry import NullTelemetry, Telemetry
from bugstream.gateway.work import ConnectionWork
from bugstream.services.access_snapshot import load_access
from bugstream.services.context import Actor, ServiceContext
from bugstream.services.history import OutboxHistory
from bugstream.services.users import active_user

log = logging.getLogger("bugstream.gateway")
security_log = logging.getLogger("bugstream.security")


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
        tickets: TicketLedger | None = None,
        presence: PresenceStore | None = None,
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
        self.abuse = AbuseMonitor(
            threshold=config.abuse_threshold,
            window=config.abuse_window,
            block_seconds=config.block_seconds,
            clock=clock,
            on_security_event=self._security_event,
        )
        self.work = ConnectionWork(self._error)
        self.replays = ReplayCache(bus, durable=OutboxHistory(ctx))
        self.replayer = Replayer(
            hub=self.hub,
            replays=self.replays,
            work=self.work,
            telemetry=self.telemetry,
            revoke=self.revoke,
        )
        self.history = StreamHistory(hub=self.hub, replays=self.replays)
        self.presence = Presence(store=presence or MemoryPresence(), hub=self.hub, ctx=ctx)
        self.opener = Opener(
            hub=self.hub,
            tokens=tokens,
            config=config,
            slots=self.slots,
            tickets=tickets or MemoryTickets(),
            abuse=self.abuse,
            load_access=AccessLoader(
                lambda user_id: load_access(ctx, user_id),
                concurrency=config.access_load_concurrency,
            ),
            start_replay=self.replayer.on_connect,
            telemetry=self.telemetry,
            clock=clock,
            wall_clock=wall_clock,
        )
        self.sweeper = Sweeper(
            hub=self.hub,
            config=config,
            abuse=self.abuse,
            revoke=self.revoke,
            clock=clock,
            wall_clock=wall_clock,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._consumer: asyncio.Task[None] | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.presence.start()
        self._consumer = asyncio.create_task(self._consume(), name="bugstream-hub")
        self.sweeper.start()

    async def _consume(self) -> None:
        while True:
            try:
                async for batch in self.bus.subscribe(self.hub.position):
                    self.hub.dispatch(batch)
                    self.presence.follow_access(batch)
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
        self.opener.accepting = False
        for conn in self.hub.connections():
            self.revoke(conn, CloseCode.GOING_AWAY, "server shutting down")
        self.sweeper.stop()
        await cancel_and_wait(self._consumer)
        self._consumer = None
        self.work.cancel_all()
        for task in list(self._tasks):
            task.cancel()
        await self.presence.stop()

    # ---- opening (opening.py) ------------------------------------------------------------

    def check_upgrade(self, request: UpgradeRequest, *, websocket: bool = True) -> Refusal | None:
        return self.opener.check_upgrade(request, websocket=websocket)

    def end_streams(self) -> None:
        """Close every SSE stream (1001, resume elsewhere): at shutdown, before the HTTP
        server waits for its open responses, which a stream never ends by itself."""
        for conn in list(self.hub.connections()):
            if isinstance(conn.sink, SseSink):
                self.revoke(conn, CloseCode.GOING_AWAY, "server shutting down")

    # ---- the SSE fallback (gateway/sse.py; its HTTP side is api/routes/stream.py) ------------

    async def open_stream(
        self, *, path: str, query: dict[str, str], headers: dict[str, str], peer: str, tls: bool
    ) -> AsyncIterator[bytes] | BugstreamError:
        """Open an SSE stream as a socket is opened: its body, or why it was refused."""
        request = UpgradeRequest(path, query, headers, peer, tls)
        refusal = self.opener.check_upgrade(request, websocket=False)
        if refusal is not None:
            code = _REFUSAL_CODES.get(refusal.status, ErrorCode.SERVICE_UNAVAILABLE)
            return BugstreamError(refusal.reason, code=code)
        sink = SseSink(self.hub.writable_again, self.activity)
        conn = await self.opener.open(sink, request)
        if conn is None:
            return sink.refusal()
        self.presence.opened(conn, follows=follows_presence(request.query))
        sink.conn = conn
        return self._stream_body(conn, sink)

    async def _stream_body(self, conn: Connection, sink: SseSink) -> AsyncIterator[bytes]:
        try:
            async for chunk in sink.body():
                yield chunk
        finally:
            # The client went away, or the stream ended: as a socket's connection_lost.
            self.closed(conn, "client_closed" if sink.closed_with is None else "closed")

    def stream_message(self, user_id: int, connection_id: str, data: bytes) -> bool:
        """A client message for one of the user's streams (open here); False if none."""
        for conn in self.hub.connections_of(user_id):
            if conn.info.connection_id == connection_id and not conn.closed:
                self.receive(conn, data)
                return True
        return False

    async def open(self, sink: FrameSink, request: UpgradeRequest) -> Connection | None:
        """Authenticate and register a new socket; None if it was refused (and closed)."""
        conn = await self.opener.open(sink, request)
        if conn is not None:
            self.presence.opened(conn, follows=follows_presence(request.query))
        return conn

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
            self.replayer.on_message(conn, message)
        elif kind in (ClientMessage.SUBSCRIBE, ClientMessage.UNSUBSCRIBE):
            self.work.queue(conn, message.request_id, self._subscribe(conn, message))
        elif kind == ClientMessage.PRESENCE_VIEW:
            self.work.queue(conn, message.request_id, self.presence.view(conn, message))
        elif kind in COMMANDS:
            spec = COMMANDS[Command(kind)]
            payload = validate_payload(spec, message.payload)
            command = self._command(conn, message, spec.run, payload)
            self.work.queue(conn, message.request_id, command)
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
        result = {"token_expires_at": iso(conn.token_expires_at)}
        self.hub.send(conn, ack_frame(message.request_id, ClientMessage.AUTH.value, result))

    async def _subscribe(self, conn: Connection, message: Inbound) -> None:
        result = await apply_subscription(self.ctx, conn, message)
        self.hub.send(conn, ack_frame(message.request_id, message.type, result))

    async def _command(self, conn: Connection, message: Inbound, run: Any, payload: Any) -> None:
        user = await active_user(self.ctx, conn.user_id)
        result = await run(self.ctx, Actor(user_id=user.id, role=user.role), payload)
        self.hub.send(conn, ack_frame(message.request_id, message.type, result))

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
        self.work.drop(conn)
        self.presence.closed(conn)
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

    def _security_event(self, kind: str, key: str, details: dict[str, object]) -> None:
        # One line per strike or block, with the fields an operator filters on.
        security_log.warning(
            "security %s", kind, extra={"security_event": kind, "key": key, **details}
        )


_KNOWN_TYPES = frozenset([*ClientMessage, *Command])


def follows_presence(query: dict[str, str]) -> bool:
    """`?presence=true` (or 1): the connection wants presence messages from the start."""
    return query.get("presence", "").lower() in {"1", "true"}


#: Stream refusals by HTTP status (gateway/handshake.py), as error codes.
_REFUSAL_CODES = {403: ErrorCode.FORBIDDEN, 429: ErrorCode.BLOCKED}


def _peek_request_id(data: bytes | str, max_bytes: int) -> RequestId:
    """The request id of a message that will not be handled, when it has a readable one."""
    try:
        return parse(data, max_bytes).request_id
    except MessageError as exc:
        return exc.request_id
