"""Opening a connection: the upgrade check, authentication, the limits a new connection must
pass (blocked, server full, per-user slots), registration with the hub and the welcome."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bugstream.auth.tokens import TokenConfig, verify_token
from bugstream.bus.slots import ConnectionSlots
from bugstream.domain.errors import AuthError, BugstreamError, ErrorCode
from bugstream.domain.protocol import CloseCode, ServerMessage
from bugstream.domain.tickets import TicketLedger
from bugstream.gateway.abuse import AbuseMonitor
from bugstream.gateway.config import GatewayConfig
from bugstream.gateway.connection import ClientInfo, Connection, FrameSink
from bugstream.gateway.handshake import (
    Refusal,
    UpgradeRequest,
    check_origin_and_transport,
    check_upgrade,
)
from bugstream.gateway.hub import Hub
from bugstream.gateway.messages import error_frame, message_frame, server_time
from bugstream.gateway.telemetry import Telemetry
from bugstream.gateway.user_access import AccessRevoked, SnapshotTooOld
from bugstream.services.access_snapshot import AccessSnapshot

log = logging.getLogger("bugstream.gateway")
security_log = logging.getLogger("bugstream.security")

_CLOSE_FOR_AUTH = {
    ErrorCode.TOKEN_EXPIRED: CloseCode.TOKEN_EXPIRED,
    ErrorCode.INVALID_TOKEN: CloseCode.INVALID_TOKEN,
}

LoadAccess = Callable[[int], Awaitable[AccessSnapshot]]
#: Called for a connection that asked to resume: (conn, last_event_id, position).
StartReplay = Callable[[Connection, int, int], None]


class Opener:
    def __init__(
        self,
        *,
        hub: Hub,
        tokens: TokenConfig,
        config: GatewayConfig,
        slots: ConnectionSlots,
        tickets: TicketLedger,
        abuse: AbuseMonitor,
        load_access: LoadAccess,
        start_replay: StartReplay,
        telemetry: Telemetry,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.hub = hub
        self.tokens = tokens
        self.config = config
        self.slots = slots
        self.tickets = tickets
        self.abuse = abuse
        self.load_access = load_access
        self._start_replay = start_replay
        self.telemetry = telemetry
        self._clock = clock
        self._wall_clock = wall_clock
        self.accepting = True
        #: Handshakes between the upgrade and the welcome (bounded by max_pending_handshakes).
        self.pending = 0

    def check_upgrade(self, request: UpgradeRequest, *, websocket: bool = True) -> Refusal | None:
        """Whether to refuse the upgrade (or, `websocket=False`, the SSE stream) with an HTTP
        status (counted by that status)."""
        refusal = self._upgrade_refusal(request, websocket)
        if refusal is not None:
            self.telemetry.connection_refused(f"http_{refusal.status}")
        return refusal

    def _upgrade_refusal(self, request: UpgradeRequest, websocket: bool) -> Refusal | None:
        if websocket:
            refusal = check_upgrade(self.config, request)
        else:
            refusal = check_origin_and_transport(self.config, request)
        if refusal is not None:
            return refusal
        if not self.accepting:
            return Refusal(503, "server shutting down")
        if self.pending >= self.config.max_pending_handshakes:
            return Refusal(503, "too many connections opening at once; retry shortly")
        blocked = self.abuse.blocked_for(f"ip:{request.client_address(self.config)}")
        if blocked:
            return Refusal(429, f"too many violations; blocked for {blocked:.0f} s")
        return None

    async def open(self, sink: FrameSink, request: UpgradeRequest) -> Connection | None:
        """Authenticate and register a new socket; None if it was refused (and closed)."""
        self.pending += 1
        try:
            return await self._open(sink, request)
        finally:
            self.pending -= 1

    async def _open(self, sink: FrameSink, request: UpgradeRequest) -> Connection | None:
        address = request.client_address(self.config)
        try:
            user_id, expires_at = await self._credentials(request)
            # A user already connected here needs no database round trip: the hub's record of
            # them is current (reconnect storms are mostly such users).
            known = self.hub.known_user(user_id)
            snapshot = None if known is not None else await self.load_access(user_id)
        except AuthError as exc:
            self.telemetry.auth_failed(exc.code.value)
            security_log.info(
                "authentication failed",
                extra={"remote": address, "code": exc.code.value, "reason": exc.message},
            )
            self.abuse.strike(f"ip:{address}", exc.code.value, {"remote": address})
            self.refuse(sink, exc, _CLOSE_FOR_AUTH.get(exc.code, CloseCode.INVALID_TOKEN))
            return None
        if snapshot is not None:
            user_id, username, role = snapshot.user.id, snapshot.user.username, snapshot.user.role
        else:
            assert known is not None
            user_id, username, role = user_id, known.username, known.role
        if self.abuse.blocked_for(f"user:{user_id}"):
            self.refuse(sink, BugstreamError("blocked", code=ErrorCode.BLOCKED), CloseCode.BLOCKED)
            return None
        if self.hub.connection_count >= self.config.max_connections:
            error = BugstreamError(
                "this server is at its connection limit; retry later",
                code=ErrorCode.SERVICE_UNAVAILABLE,
            )
            self.refuse(sink, error, CloseCode.SERVER_FULL)
            return None
        info = ClientInfo(
            connection_id=secrets.token_hex(8),
            user_id=user_id,
            username=username,
            remote_address=address,
            connected_at=self._wall_clock(),
        )
        limit = self.config.max_connections_per_user
        if not await self.slots.acquire(user_id, info.connection_id, limit):
            error = BugstreamError(
                f"at most {limit} connections per user",
                code=ErrorCode.TOO_MANY_CONNECTIONS,
                details={"limit": limit},
            )
            self.refuse(sink, error, CloseCode.TOO_MANY_CONNECTIONS)
            return None
        conn = Connection(info, role, sink, now=self._clock(), token_expires_at=expires_at)
        try:
            position = await self._register(conn, snapshot)
        except BaseException as exc:
            # Refused, or the socket went away meanwhile: give the slot back.
            await self.slots.release(user_id, info.connection_id)
            if isinstance(exc, AccessRevoked | AuthError):
                self.refuse(sink, AuthError("account is not active"), CloseCode.INVALID_TOKEN)
                return None
            raise
        resume_from = _last_event_id(request.query.get("last_event_id"))
        if resume_from is not None:
            self.hub.hold(conn)  # live events wait until the replay is out
        self.hub.send(conn, message_frame(ServerMessage.WELCOME, self._welcome(conn, position)))
        if resume_from is not None:
            self._start_replay(conn, resume_from, position)
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

    async def _credentials(self, request: UpgradeRequest) -> tuple[int, float]:
        """The user and when their access ends: from a connection ticket (spent here), else
        from the token (`Authorization: Bearer` or `?token=`)."""
        ticket = request.query.get("ticket")
        if ticket:
            claims = await self.tickets.redeem(ticket)
            if claims is None:
                raise AuthError("the connection ticket is unknown, expired or already used")
            return claims.user_id, claims.token_expires_at
        token = request.token()
        if token is None:
            raise AuthError("a token is required (?token=, ?ticket= or Authorization: Bearer)")
        verified = verify_token(self.tokens, token)
        return verified.user_id, verified.expires_at.timestamp()

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
            "token_expires_at": iso(conn.token_expires_at),
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

    def refuse(self, sink: FrameSink, error: BugstreamError, code: CloseCode) -> None:
        self.telemetry.connection_refused(error.code.value)
        self.telemetry.error(error.code.value)
        sink.write(error_frame(error))
        sink.close(int(code), error.message[:120])


def _last_event_id(value: str | None) -> int | None:
    """The `last_event_id` query parameter; a malformed one is ignored (fresh start)."""
    if value is None or not value.isdigit():
        return None
    return int(value)


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
