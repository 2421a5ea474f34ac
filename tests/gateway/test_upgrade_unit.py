"""The opening handshake's HTTP side (gateway/upgrade.py), against RFC 6455 4.2."""

from __future__ import annotations

import pytest

from bugstream.gateway.upgrade import (
    HandshakeRefused,
    accept_response,
    parse_upgrade,
    refusal_response,
)

GOOD = {
    "host": "localhost:8000",
    "upgrade": "websocket",
    "connection": "Upgrade",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",  # RFC 6455 1.3's example
    "sec-websocket-version": "13",
}


def head(method: str = "GET", version: str = "HTTP/1.1", **headers: str | None) -> bytes:
    fields: dict[str, str | None] = {**GOOD, **headers}
    lines = [f"{method} /ws?token=abc HTTP{version[4:]}"]
    lines += [f"{k}: {v}" for k, v in fields.items() if v is not None]
    return "\r\n".join(lines).encode()


def with_header(name: str, value: str | None) -> bytes:
    return head(**{name: value})  # type: ignore[arg-type]  # names with dashes


def refused(data: bytes) -> HandshakeRefused:
    with pytest.raises(HandshakeRefused) as caught:
        parse_upgrade(data)
    return caught.value


def test_a_valid_handshake_gets_the_rfc_accept_key() -> None:
    request = parse_upgrade(head())
    assert request.target == "/ws?token=abc"
    assert request.headers["host"] == "localhost:8000"
    response = accept_response(request)
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert response.endswith(b"\r\n\r\n")


def test_header_tokens_and_names_are_case_insensitive() -> None:
    request = parse_upgrade(head(upgrade="WebSocket", connection="keep-alive, UPGRADE"))
    assert request.headers["upgrade"] == "WebSocket"


def test_repeated_headers_are_joined() -> None:
    data = head() + b"\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2"
    assert parse_upgrade(data).headers["x-forwarded-for"] == "10.0.0.1, 10.0.0.2"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (head(method="POST"), 405),
        (head(version="HTTP/1.0"), 400),
        (head(upgrade=None), 426),
        (head(upgrade="h2c"), 426),
        (head(connection="keep-alive"), 400),
        (with_header("sec-websocket-version", "8"), 426),
        (with_header("sec-websocket-key", None), 400),
        (with_header("sec-websocket-key", "not base64!"), 400),
        (with_header("sec-websocket-key", "c2hvcnQ="), 400),  # 5 bytes, not 16
        (b"GET /ws\r\nupgrade: websocket", 400),
        (head() + b"\r\nno colon here", 400),
    ],
)
def test_invalid_handshakes_are_refused_with_the_rfc_status(data: bytes, status: int) -> None:
    assert refused(data).status == status


def test_a_refusal_is_a_complete_response_that_closes() -> None:
    response = refusal_response(426, "Sec-WebSocket-Version: 13 is required")
    head_part, _, body = response.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13" in head_part  # RFC 6455 4.4
    assert b"\r\nConnection: close" in head_part
    assert f"Content-Length: {len(body)}".encode() in head_part
    assert body == b"Sec-WebSocket-Version: 13 is required\n"
