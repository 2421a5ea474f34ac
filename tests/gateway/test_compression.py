"""permessage-deflate (RFC 7692) on /ws, seen from raw sockets: what the 101 response agrees
to, which frames arrive compressed (RSV1), that they inflate to the very JSON an uncompressed
client gets, that every recipient gets the same bytes, and that compressed commands are read.
"""

from __future__ import annotations

import asyncio
import os
import struct
import zlib
from typing import Any

import orjson

from bugstream.domain.enums import Role
from bugstream.gateway.compression import MIN_COMPRESSED_PAYLOAD
from bugstream.gateway.connection import Outgoing
from bugstream.gateway.frames import text_frame
from tests.support.factory import Factory
from tests.support.live import TIMEOUT, LiveServer, live_server

OFFER = "permessage-deflate; client_max_window_bits"
AGREED = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
RSV1 = 0x40


class RawSocket:
    """A WebSocket client over a bare TCP stream: frames as they are on the wire."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.headers: dict[str, str] = {}
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def open(
        cls, live: LiveServer, token: str, extensions: str | None, query: str = ""
    ) -> RawSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        offer = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
        writer.write(
            f"GET /ws?token={token}{query} HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{offer}\r\n".encode()
        )
        sock = cls(reader, writer)
        async with asyncio.timeout(TIMEOUT):
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
        status, *lines = head.strip().split("\r\n")
        assert status.startswith("HTTP/1.1 101"), head
        for line in lines:
            name, _, value = line.partition(":")
            sock.headers[name.strip().lower()] = value.strip()
        first, welcome = await sock.frame()
        sock.welcome = orjson.loads(welcome)
        assert first == 0x81 and sock.welcome["type"] == "welcome"
        return sock

    async def frame(self) -> tuple[int, bytes]:
        """The next frame: its first byte (FIN, RSV bits, opcode) and payload."""
        async with asyncio.timeout(TIMEOUT):
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first, await self.reader.readexactly(length)

    async def event(self) -> tuple[int, bytes]:
        """The next event's frame (replies such as pongs are skipped)."""
        while True:
            first, payload = await self.frame()
            if b'"event_id"' in message(first, payload):
                return first, payload

    def send(self, payload: bytes, *, compressed: bool = False) -> None:
        """A masked text frame (compressed: `payload` deflated, RSV1 set)."""
        if compressed:
            deflater = zlib.compressobj(wbits=-15)
            payload = deflater.compress(payload) + deflater.flush(zlib.Z_SYNC_FLUSH)
            payload = payload[:-4]
        mask = os.urandom(4)
        first = 0x81 | (RSV1 if compressed else 0)
        length = len(payload)
        head = (
            bytes((first, 0x80 | length))
            if length < 126
            else struct.pack("!BBH", first, 254, length)
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    def close(self) -> None:
        self.writer.close()


def message(first: int, payload: bytes) -> bytes:
    """A text message's JSON, inflated when its frame says it is compressed."""
    if first & RSV1:
        return zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff")
    return payload


async def post_bug(live: LiveServer, user: Any, project_id: int, description: str) -> None:
    async with live.http(user) as http:
        response = await http.post(
            "/api/v1/bugs",
            json={"project_id": project_id, "title": "Crash", "description": description},
        )
        assert response.status_code == 201, response.text


LONG = ("The board freezes when a column holds more than 200 cards. " * 30).strip()  # 1.8 KB


async def test_a_large_event_arrives_compressed_and_the_same_for_every_recipient(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        token = live.token_for(dev)
        first = await RawSocket.open(live, token, OFFER)
        second = await RawSocket.open(live, token, "x-unknown, " + OFFER)
        plain = await RawSocket.open(live, token, None)
        try:
            assert first.headers["sec-websocket-extensions"] == AGREED
            assert second.headers["sec-websocket-extensions"] == AGREED
            assert "sec-websocket-extensions" not in plain.headers
            await post_bug(live, dev, project.id, LONG)
            one, two, three = first_frames = [await s.event() for s in (first, second, plain)]
            assert one[0] == 0xC1, "FIN, RSV1 (compressed), text"
            assert one == two, "both deflate recipients get the same bytes"
            assert three[0] == 0x81, "no RSV1 for a client that did not offer compression"
            assert message(*one) == three[1], "inflates to the very JSON sent uncompressed"
            assert orjson.loads(three[1])["payload"]["description"] == LONG
            assert len(one[1]) < len(three[1]) / 3, [len(f[1]) for f in first_frames]
        finally:
            for s in (first, second, plain):
                s.close()


async def test_a_replayed_event_arrives_compressed(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        token = live.token_for(dev)
        before = await RawSocket.open(live, token, None)
        position = before.welcome["payload"]["latest_event_id"]
        before.close()
        await post_bug(live, dev, project.id, LONG)
        sock = await RawSocket.open(live, token, OFFER, query=f"&last_event_id={position}")
        try:
            first, payload = await sock.event()
            assert first == 0xC1, "the replay cache's events are compressed like live ones"
            assert orjson.loads(message(first, payload))["payload"]["description"] == LONG
        finally:
            sock.close()


async def test_compressed_commands_are_understood(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        sock = await RawSocket.open(live, live.token_for(dev), OFFER)
        try:
            sock.send(b'{"type": "ping", "request_id": "zipped"}', compressed=True)
            first, payload = await sock.frame()
            reply = orjson.loads(message(first, payload))
            assert reply["type"] == "pong", reply
            assert first == 0x81, "a short reply goes uncompressed"
            sock.send(b'{"type": "ping", "request_id": "plain"}')
            assert orjson.loads(message(*await sock.frame()))["type"] == "pong"
        finally:
            sock.close()


async def test_with_the_setting_off_nothing_is_compressed(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx, ws_compression=False) as live:
        sock = await RawSocket.open(live, live.token_for(dev), OFFER)
        try:
            assert "sec-websocket-extensions" not in sock.headers
            await post_bug(live, dev, project.id, LONG)
            first, payload = await sock.event()
            assert first == 0x81
            assert orjson.loads(payload)["payload"]["description"] == LONG
        finally:
            sock.close()


async def test_a_small_server_window_gets_compressed_frames_only_where_they_fit(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        sock = await RawSocket.open(
            live, live.token_for(dev), "permessage-deflate; server_max_window_bits=10"
        )
        try:
            assert (
                sock.headers["sec-websocket-extensions"] == AGREED + "; server_max_window_bits=10"
            )
            await post_bug(live, dev, project.id, LONG)  # about 2.5 KB: more than 2^10
            first, payload = await sock.event()
            assert first == 0x81 and orjson.loads(payload)["payload"]["description"] == LONG
            await post_bug(live, dev, project.id, "short")  # under 1 KB: fits the window
            first, payload = await sock.event()
            assert first == 0xC1
            inflated = zlib.decompressobj(wbits=-10).decompress(payload + b"\x00\x00\xff\xff")
            assert orjson.loads(inflated)["payload"]["description"] == "short"
        finally:
            sock.close()


async def test_an_offer_the_server_cannot_honour_is_declined(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        token = live.token_for(dev)
        # zlib cannot compress within a 256-byte window: decline that offer, take the next.
        sock = await RawSocket.open(
            live, token, "permessage-deflate; server_max_window_bits=8, permessage-deflate"
        )
        declined = await RawSocket.open(live, token, "permessage-deflate; server_max_window_bits=8")
        bad = await RawSocket.open(live, token, "permessage-deflate; server_max_window_bits=99")
        try:
            assert sock.headers["sec-websocket-extensions"] == AGREED
            assert "sec-websocket-extensions" not in declined.headers
            assert "sec-websocket-extensions" not in bad.headers
        finally:
            for s in (sock, declined, bad):
                s.close()


def test_short_events_stay_plain_and_each_event_is_compressed_once() -> None:
    short = Outgoing(text_frame(b"x" * (MIN_COMPRESSED_PAYLOAD - 1)), None, 1)
    assert short.for_window(15) is short
    long = Outgoing(text_frame(b'{"a": "' + b"y" * 2000 + b'"}'), None, 2)
    packed = long.for_window(15)
    assert packed is not long and packed.frame[0] == 0xC1
    assert long.for_window(15) is packed, "compressed once, then shared"
    assert long.for_window(0) is long, "compression not negotiated"
    assert long.for_window(packed.window_bits - 1) is long, "the client's window is too small"
