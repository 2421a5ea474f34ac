"""The listener adapter: `/ws` on uvicorn's own port, without ASGI in the way.

uvicorn hands a WebSocket upgrade to `ws=<protocol class>` together with the raw request
bytes and the transport. This `asyncio.Protocol` answers the handshake (gateway/upgrade.py),
frames with websockets' sans-I/O `ServerProtocol`, and then lets the gateway core own every
write: data frames are encoded once by the hub and written straight to the transport, many per
write.
(ASGI's `websocket.send` would write each message on its own; see docs/design.md.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any, cast

from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from bugstream.domain.errors import ErrorCode
from bugstream.domain.protocol import CloseCode
from bugstream.gateway.compression import negotiate
from bugstream.gateway.connection import Connection
from bugstream.gateway.gateway import Gateway
from bugstream.gateway.handshake import UpgradeRequest
from bugstream.gateway.upgrade import (
    MAX_HEAD_BYTES,
    HandshakeRefused,
    accept_response,
    parse_upgrade,
    refusal_response,
)

log = logging.getLogger("bugstream.gateway")


def _discard(data: bytes) -> None:
    return None


#: Lifespan-state key under which the application publishes its gateway.
GATEWAY_STATE_KEY = "bugstream_gateway"


class GatewayProtocol(asyncio.Protocol):
    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any]) -> None:
        self.gateway = cast(Gateway, app_state[GATEWAY_STATE_KEY])
        self._server_connections: set[Any] = server_state.connections
        self._server_tasks: set[asyncio.Task[None]] = server_state.tasks
        # Framing only: the handshake is answered here, so it starts OPEN.
        self.ws = ServerProtocol(max_size=self.gateway.config.max_frame_bytes, state=State.OPEN)
        self._head: bytes | None = b""  # the request head until the handshake is answered
        self.transport: asyncio.Transport | None = None
        self.conn: Connection | None = None
        self._opening: asyncio.Task[None] | None = None
        self._early: list[bytes | str] = []
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None
        self._paused = False
        self._closing = False
        self._tls = False
        self._peer = "unknown"
        self._deflate_bits = 0  # permessage-deflate's window for our messages; 0: off

    # ---- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._server_connections.add(self)
        self._tls = self.transport.get_extra_info("sslcontext") is not None
        send_buffer = self.gateway.config.send_buffer_bytes
        sock = self.transport.get_extra_info("socket")
        if send_buffer and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self._peer = str(peer[0])

    def data_received(self, data: bytes) -> None:
        if self._head is not None:
            head = self._head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self._head = head
                if len(head) > MAX_HEAD_BYTES:
                    self._refuse_upgrade(431, "request head too large")
                return
            self._head = None
            if not self._handshake(head[:end]):
                return
            data = head[end + 4 :]
            if not data:
                return
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                self._frame(event)
        self._send_protocol_output()
        if self.ws.close_expected() and self.transport is not None:
            # The closing handshake is done (or the peer broke the protocol): hang up.
            self._stop_writing()
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_writing()
        self._server_connections.discard(self)
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        if self.conn is not None:
            reason = "client_closed" if self.ws.close_rcvd is not None else "connection_lost"
            self.gateway.closed(self.conn, reason)
            self.conn = None

    def pause_writing(self) -> None:
        self._paused = True
        if self.conn is not None:
            self.conn.paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self.conn is not None:
            self.gateway.hub.writable_again(self.conn)

    def _stop_writing(self) -> None:
        """No frame may follow a close frame, nor go to a closing transport."""
        self._closing = True
        if self.conn is not None:
            self.conn.write = _discard

    # ---- uvicorn's graceful shutdown -----------------------------------------------------------

    def shutdown(self) -> None:
        if self.conn is not None:
            self.gateway.revoke(self.conn, CloseCode.GOING_AWAY, "server shutting down")
        elif self.transport is not None:
            self.transport.close()

    # ---- handshake ------------------------------------------------------------------------------

    def _handshake(self, head: bytes) -> bool:
        """Answer the opening handshake; whether the connection was upgraded."""
        try:
            request = parse_upgrade(head)
        except HandshakeRefused as refused:
            self._refuse_upgrade(refused.status, refused.reason)
            return False
        upgrade = UpgradeRequest.parse(request.target, request.headers, self._peer, self._tls)
        refusal = self.gateway.check_upgrade(upgrade)
        if refusal is not None:
            self._refuse_upgrade(refusal.status, refusal.reason)
            return False
        deflate = None
        if self.gateway.config.compression:
            deflate = negotiate(request.headers.get("sec-websocket-extensions"))
        if deflate is not None:
            # Inbound compressed frames are inflated by ServerProtocol; outbound frames come
            # compressed from the hub (the extension's own encoder is used for no data frame).
            self.ws.extensions = [deflate.extension]
            self._deflate_bits = deflate.window_bits
        assert self.transport is not None
        self.transport.write(accept_response(request, deflate.response if deflate else None))
        task = asyncio.get_running_loop().create_task(self._open(upgrade))
        self._opening = task
        self._server_tasks.add(task)
        task.add_done_callback(self._server_tasks.discard)
        return True

    def _refuse_upgrade(self, status: int, reason: str) -> None:
        self._head = None
        self._stop_writing()
        if self.transport is not None:
            self.transport.write(refusal_response(status, reason))
            self.transport.close()

    async def _open(self, upgrade: UpgradeRequest) -> None:
        try:
            conn = await self.gateway.open(self, upgrade)
        except Exception:
            # E.g. Redis or the database unreachable: tell the client to come back (1011 is
            # a reconnect code) instead of leaving it without a welcome, or a close.
            log.exception("opening a connection failed")
            self.gateway.telemetry.connection_refused(ErrorCode.INTERNAL_ERROR.value)
            self.gateway.telemetry.error(ErrorCode.INTERNAL_ERROR.value)
            self.close(int(CloseCode.INTERNAL_ERROR), "server error; reconnect later")
            return
        if conn is None:
            return
        if self._closing:
            self.gateway.closed(conn)
            return
        self.conn = conn
        # The fan-out writes straight to the transport while the socket is open
        # (_stop_writing puts a stop to it).
        assert self.transport is not None
        conn.write = self.transport.write
        conn.buffered = self.transport.get_write_buffer_size
        conn.paused = self._paused
        conn.deflate_bits = self._deflate_bits
        early, self._early = self._early, []
        for message in early:
            self.gateway.receive(conn, message)

    # ---- frames ---------------------------------------------------------------------------------

    def _frame(self, frame: Frame) -> None:
        if self.conn is not None:
            self.gateway.activity(self.conn)
        opcode = frame.opcode
        if opcode in (Opcode.TEXT, Opcode.BINARY):
            if frame.fin:
                self._message(opcode, bytes(frame.data))
            else:
                self._fragment_opcode = opcode
                self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin and self._fragment_opcode is not None:
                data = b"".join(self._fragments)
                self._fragments = []
                self._message(self._fragment_opcode, data)
                self._fragment_opcode = None
        elif opcode is Opcode.CLOSE:
            self._stop_writing()
        # PING is answered by ServerProtocol itself; PONG only counts as activity.

    def _message(self, opcode: Opcode, data: bytes) -> None:
        # ServerProtocol does not check that text frames are UTF-8: RFC 6455 8.1 requires
        # failing the connection with 1007. Binary frames may hold anything; the gateway
        # answers invalid UTF-8 in those with invalid_message_format.
        message: bytes | str = data
        if opcode is Opcode.TEXT:
            try:
                message = data.decode()
            except UnicodeDecodeError:
                reason = "invalid UTF-8 in a text frame"
                if self.conn is not None:
                    self.gateway.revoke(self.conn, CloseCode.INVALID_DATA, reason)
                else:
                    self.close(int(CloseCode.INVALID_DATA), reason)
                return
        if self.conn is None:
            if len(self._early) < 16:
                self._early.append(message)
            return
        self.gateway.receive(self.conn, message)

    def _send_protocol_output(self) -> None:
        if self.transport is None:
            return
        output = self.ws.data_to_send()
        data = b"".join(output)
        if data:
            self.transport.write(data)

    # ---- FrameSink ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self._closing and not self.transport.is_closing():
            self.transport.write(data)

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def send_ping(self) -> None:
        if self._closing:
            return
        with contextlib.suppress(Exception):
            self.ws.send_ping(b"")
            self._send_protocol_output()

    def close(self, code: int, reason: str) -> None:
        if self._closing or self.transport is None:
            return
        self._stop_writing()
        with contextlib.suppress(Exception):
            self.ws.send_close(code, reason)
            self._send_protocol_output()
        # Wait briefly for the client's close frame, then hang up regardless.
        asyncio.get_running_loop().call_later(2.0, self._abort)

    def _abort(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            # A peer that does not read would keep `close()` waiting (and the buffer alive)
            # until TCP gives up: drop what it never took.
            transport.abort()
        elif not transport.is_closing():
            transport.close()
