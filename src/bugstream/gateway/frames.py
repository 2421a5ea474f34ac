"""Server-to-client WebSocket frames, encoded once and written to many sockets.

Server frames are never masked (RFC 6455 5.1), so one encoded frame serves every recipient:
the hub encodes each event once per audience, not once per connection.
"""

from __future__ import annotations

import struct

import orjson

_TEXT_FIN = 0x81
#: FIN, RSV1 ("this message is compressed", RFC 7692 6), text.
_DEFLATED_TEXT_FIN = 0xC1


def _frame(first: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", first, 126, length) + payload
    return struct.pack("!BBQ", first, 127, length) + payload


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame carrying `payload` (UTF-8 JSON)."""
    return _frame(_TEXT_FIN, payload)


def deflated_text_frame(data: bytes) -> bytes:
    """A final, unmasked text frame whose payload is `data`, a text message compressed with
    permessage-deflate (RSV1 set)."""
    return _frame(_DEFLATED_TEXT_FIN, data)


def frame_payload(frame: bytes) -> memoryview:
    """The payload of a frame made by `text_frame` (no copy)."""
    length = frame[1] & 0x7F
    start = 2 if length < 126 else 4 if length == 126 else 10
    return memoryview(frame)[start:]


def json_frame(message: object) -> bytes:
    return text_frame(orjson.dumps(message))
