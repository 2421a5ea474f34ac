"""permessage-deflate (RFC 7692) on `/ws`, compressed once per event for every recipient.

Negotiation: the first `permessage-deflate` offer in `Sec-WebSocket-Extensions` that
websockets' `ServerPerMessageDeflateFactory` can accept, answered with
`server_no_context_takeover` and `client_no_context_takeover` whatever the client offered
(RFC 7692 7.1.1.1 and 7.1.1.2 let the server add both):
- no server context takeover is what lets one compressed frame serve every recipient: each
  message is compressed on its own, so its bytes do not depend on what a connection was sent
  before;
- no client context takeover means the server keeps no inflate state (a 32 KB window) per
  connection between messages: clients send few, small commands.
An offer the factory refuses (bad or repeated parameters, `server_max_window_bits=8`, which
zlib cannot compress with) is declined and the next offer is tried; with none left the
connection goes on uncompressed. The extension object it returns decodes the client's
compressed frames inside `ServerProtocol`.

Window bits: a client may ask the server to keep within a smaller LZ77 window
(`server_max_window_bits=N`). Without context takeover a message can only refer back into
itself, so each event is compressed with the smallest window that covers its payload (at least
2^9, zlib's least): a connection that allowed that window gets the shared compressed frame, one
that allowed less gets the plain frame (a message may always go uncompressed, RFC 7692 6).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from websockets.exceptions import InvalidHeader, NegotiationError
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.headers import build_extension, parse_extension

from bugstream.gateway.frames import deflated_text_frame

#: Payloads shorter than this go uncompressed. Deflate saves little on them (a 200-byte event
#: shrinks by a few dozen bytes, about what the TCP/IP headers of its segment cost anyway) while
#: every recipient would pay an inflate for it.
MIN_COMPRESSED_PAYLOAD = 256

_TAIL = b"\x00\x00\xff\xff"  # the end of a sync flush, left out of the frame (RFC 7692 7.2.1)
_FACTORY = ServerPerMessageDeflateFactory(
    server_no_context_takeover=True, client_no_context_takeover=True
)


@dataclass(frozen=True, slots=True)
class Deflate:
    """permessage-deflate as agreed with one client."""

    #: The `Sec-WebSocket-Extensions` value of the 101 response.
    response: str
    #: Decodes the client's compressed frames (for `ServerProtocol.extensions`).
    extension: PerMessageDeflate
    #: The largest LZ77 window (as bits) our compressed messages may use with this client.
    window_bits: int


def negotiate(offer: str | None) -> Deflate | None:
    """The agreement for a `Sec-WebSocket-Extensions` request header; None: no compression
    (nothing offered, or nothing acceptable; a malformed header is treated as no offer)."""
    if not offer:
        return None
    try:
        offers = parse_extension(offer)
    except InvalidHeader:
        return None
    for name, params in offers:
        if name != _FACTORY.name:
            continue
        try:
            response, extension = _FACTORY.process_request_params(params, [])
        except NegotiationError:
            continue
        return Deflate(
            build_extension([(name, response)]), extension, extension.local_max_window_bits
        )
    return None


def deflate_message(payload: bytes | memoryview) -> tuple[bytes, int] | None:
    """`payload` as the frame of a compressed text message, with the window bits it needs;
    None when it is better sent plain (short, or deflate does not make it smaller)."""
    size = len(payload)
    if size < MIN_COMPRESSED_PAYLOAD:
        return None
    bits = min(15, max(9, (size - 1).bit_length()))
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if data.endswith(_TAIL):
        data = data[:-4]
    if len(data) >= size:
        return None
    return deflated_text_frame(data), bits
