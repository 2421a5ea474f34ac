"""The HTTP side of a WebSocket opening handshake (RFC 6455 4.2), sans I/O.

uvicorn has already parsed the request (and hands it over re-serialized, header names in lower
case); websockets' `ServerProtocol` would parse it again and build its answer through generic
header objects, which was a fifth of what a connect cost. This reads the few headers the
handshake needs, checks them as RFC 6455 4.2.1 asks, and answers with bytes made here; the
key digest is websockets' own (`accept_key`), and framing after the handshake stays
websockets' (`ServerProtocol` in the OPEN state).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from websockets.utils import accept_key

#: The longest request head read; a longer one is refused (431).
MAX_HEAD_BYTES = 65_536

_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class UpgradeHead:
    """A request head that asks for a WebSocket: its target and headers (names lower case;
    repeated headers joined with ", ")."""

    target: str
    headers: dict[str, str]


class HandshakeRefused(Exception):
    """The request is not a valid WebSocket opening handshake: answer `status`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}


def parse_upgrade(head: bytes) -> UpgradeHead:
    """The request head (without its blank line); `HandshakeRefused` when it is not a valid
    opening handshake."""
    try:
        text = head.decode("latin-1")
        request_line, *lines = text.split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise HandshakeRefused(400, "malformed request line") from None
    if method != "GET":
        raise HandshakeRefused(405, "a WebSocket handshake is a GET")
    if version != "HTTP/1.1":
        raise HandshakeRefused(400, "a WebSocket handshake needs HTTP/1.1")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HandshakeRefused(400, "malformed header line")
        name = name.lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if "websocket" not in _tokens(headers.get("upgrade", "")):
        raise HandshakeRefused(426, "Upgrade: websocket is required")
    if "upgrade" not in _tokens(headers.get("connection", "")):
        raise HandshakeRefused(400, "Connection: Upgrade is required")
    if headers.get("sec-websocket-version") != "13":
        raise HandshakeRefused(426, "Sec-WebSocket-Version: 13 is required")
    key = headers.get("sec-websocket-key", "")
    try:
        raw_key = base64.b64decode(key.encode(), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw_key = b""
    if len(raw_key) != 16:
        raise HandshakeRefused(400, "Sec-WebSocket-Key must be 16 bytes in base64")
    return UpgradeHead(target, headers)


def accept_response(head: UpgradeHead, extensions: str | None = None) -> bytes:
    """The 101 answer to a valid opening handshake; `extensions`: the agreed
    `Sec-WebSocket-Extensions` value, if any."""
    accept = accept_key(head.headers["sec-websocket-key"])
    agreed = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n{agreed}\r\n"
    ).encode()


def refusal_response(status: int, reason: str) -> bytes:
    """A plain-text HTTP answer that refuses the upgrade and closes the connection."""
    body = (reason + "\n").encode()
    extra = "Sec-WebSocket-Version: 13\r\n" if status == 426 else ""
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n{extra}"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
