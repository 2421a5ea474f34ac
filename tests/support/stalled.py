"""A WebSocket client that completes the handshake and then stops reading: the slow consumer.

Its receive buffer is made tiny before connecting, so TCP's window closes after a few KiB and
everything else the server sends stays on the server's side, where the limits apply.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket

RECEIVE_BUFFER = 4096


async def small_window_socket(port: int) -> socket.socket:
    """A socket connected to the server with a tiny receive buffer (set before connecting, so
    TCP never offers a larger window)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


class StalledClient:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def connect(cls, port: int, token: str, query: str = "") -> StalledClient:
        loop = asyncio.get_running_loop()
        sock = await small_window_socket(port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws?token={token}{'&' + query if query else ''} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 5.0)
            assert chunk, "closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(sock)

    async def close_codes(self, timeout: float = 5.0) -> list[int]:
        """Read what the server sent until it hangs up; the codes of its close frames."""
        loop = asyncio.get_running_loop()
        data = b""
        try:
            while chunk := await asyncio.wait_for(loop.sock_recv(self.sock, 65_536), timeout):
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return [int.from_bytes(payload[:2]) for opcode, payload in frames(data) if opcode == 8]

    def close(self) -> None:
        self.sock.close()


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each whole server frame in `data` (server frames are unmasked)."""
    found: list[tuple[int, bytes]] = []
    at = 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length, at = int.from_bytes(data[at : at + 2]), at + 2
        elif length == 127:
            length, at = int.from_bytes(data[at : at + 8]), at + 8
        if at + length > len(data):
            break
        found.append((opcode, data[at : at + length]))
        at += length
    return found
