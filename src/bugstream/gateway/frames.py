"""Server-to-client WebSocket frames, encoded once and written to many sockets.

Server frames are never masked (RFC 6455 5.1), so one encoded frame serves every recipient:
the hub encodes each event once per audience, not once per connection.
"""

from __future__ import annotations

import struct

import orjson

_TEXT_FIN = 0x81


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame carrying `payload` (UTF-8 JSON)."""
    length = len(payload)
    if length < 126:
        return bytes((_TEXT_FIN, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", _TEXT_FIN, 126, length) + payload
    return struct.pack("!BBQ", _TEXT_FIN, 127, length) + payload


def json_frame(message: object) -> bytes:
    return text_frame(orjson.dumps(message))
