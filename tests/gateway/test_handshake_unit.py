"""The checks made on a /ws upgrade request before any WebSocket exists: where the token is
read from, which origins are allowed, the TLS / proxy rules, and the client's address."""

from __future__ import annotations

import pytest

from bugstream.gateway.config import GatewayConfig
from bugstream.gateway.handshake import (
    Refusal,
    UpgradeRequest,
    check_upgrade,
    origin_allowed,
)

HOST = "bugs.example.com"


def request(
    target: str = "/ws?token=abc",
    *,
    tls: bool = False,
    peer: str = "198.51.100.7",
    **headers: str,
) -> UpgradeRequest:
    names = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    names.setdefault("host", HOST)
    return UpgradeRequest.parse(target, names, peer, tls)


# ---- token ----------------------------------------------------------------------------------


def test_token_from_the_query() -> None:
    assert request("/ws?token=abc.def.ghi").token() == "abc.def.ghi"
    assert request("/ws?last_event_id=3&token=t1").token() == "t1"


def test_no_token_or_an_empty_one_is_none() -> None:
    assert request("/ws").token() is None
    assert request("/ws?token=").token() is None
    assert request("/ws?other=1").token() is None


def test_bearer_header_wins_over_the_query() -> None:
    assert request("/ws?token=q", authorization="Bearer h").token() == "h"
    assert request("/ws", authorization="Bearer h").token() == "h"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    assert request("/ws", authorization=f"{scheme} tok").token() == "tok"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer ", "Bearer", "tok", ""])
def test_other_authorization_headers_fall_back_to_the_query(header: str) -> None:
    assert request("/ws?token=q", authorization=header).token() == "q"
    assert request("/ws", authorization=header).token() is None


def test_bearer_value_is_trimmed() -> None:
    assert request("/ws", authorization="Bearer   tok  ").token() == "tok"


# ---- origin ---------------------------------------------------------------------------------

DEV = GatewayConfig()
PROD = GatewayConfig(allow_localhost_origins=False, allowed_origins=("https://app.example.com",))


def test_no_origin_is_allowed() -> None:
    # Browsers always send Origin; a client without one is not a browser page.
    assert origin_allowed(PROD, None, HOST)


def test_same_origin_is_allowed() -> None:
    assert origin_allowed(PROD, f"https://{HOST}", HOST)
    assert origin_allowed(PROD, "https://BUGS.example.com", HOST)
    assert origin_allowed(PROD, "http://127.0.0.1:8000", "127.0.0.1:8000")


def test_same_host_on_another_port_is_another_origin() -> None:
    assert not origin_allowed(PROD, "http://127.0.0.1:9000", "127.0.0.1:8000")


def test_configured_origins_are_allowed_exactly() -> None:
    assert origin_allowed(PROD, "https://app.example.com", HOST)
    assert not origin_allowed(PROD, "http://app.example.com", HOST)
    assert not origin_allowed(PROD, "https://app.example.com.evil.example", HOST)
    assert not origin_allowed(PROD, "https://evil.example", HOST)


def test_wildcard_allows_any_origin() -> None:
    config = GatewayConfig(allow_localhost_origins=False, allowed_origins=("*",))
    assert origin_allowed(config, "https://anything.example", HOST)
    assert origin_allowed(config, "null", HOST)


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost",
        "http://localhost:3000",
        "https://localhost:8443",
        "http://127.0.0.1:5173",
        "http://[::1]:8080",
        "http://LOCALHOST:3000",
    ],
)
def test_localhost_origins_only_in_development(origin: str) -> None:
    assert origin_allowed(DEV, origin, HOST)
    assert not origin_allowed(PROD, origin, HOST)


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "file://",
        "ws://localhost:3000",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "http://evil.example/localhost",
        "localhost",
        "",
    ],
)
def test_lookalikes_and_other_schemes_are_refused(origin: str) -> None:
    assert not origin_allowed(DEV, origin, HOST)


# ---- check_upgrade ------------------------------------------------------------------------------


def test_a_good_request_passes() -> None:
    assert check_upgrade(DEV, request()) is None
    assert check_upgrade(DEV, request(origin="http://localhost:3000")) is None


@pytest.mark.parametrize("target", ["/", "/other", "/ws/", "/ws/x", "/WS", "/api/v1/ws"])
def test_other_paths_are_404(target: str) -> None:
    refusal = check_upgrade(DEV, request(target + "?token=abc"))
    assert refusal is not None and refusal.status == 404


def test_a_configured_path() -> None:
    config = GatewayConfig(path="/stream")
    assert check_upgrade(config, request("/stream?token=t")) is None
    refusal = check_upgrade(config, request("/ws?token=t"))
    assert refusal is not None and refusal.status == 404


def test_refused_origin_is_403() -> None:
    refusal = check_upgrade(PROD, request(origin="https://evil.example"))
    assert refusal == Refusal(403, "origin not allowed")


def test_production_without_a_proxy_needs_tls() -> None:
    config = GatewayConfig(require_tls=True, allow_localhost_origins=False)
    refusal = check_upgrade(config, request(tls=False))
    assert refusal is not None and refusal.status == 403
    assert check_upgrade(config, request(tls=True)) is None


@pytest.mark.parametrize(
    ("proto", "status"),
    [
        (None, 403),
        ("http", 403),
        ("ws", 403),
        ("", 403),
        ("https", None),
        ("HTTPS", None),
        ("https, http", None),  # the first (client-facing) proxy's view counts
        ("http, https", 403),
    ],
)
def test_behind_a_proxy_the_forwarded_protocol_must_be_https(
    proto: str | None, status: int | None
) -> None:
    config = GatewayConfig(behind_tls_proxy=True)
    upgrade = request() if proto is None else request(x_forwarded_proto=proto)
    refusal = check_upgrade(config, upgrade)
    assert (refusal.status if refusal else None) == status


def test_path_is_checked_before_anything_else() -> None:
    config = GatewayConfig(behind_tls_proxy=True, allow_localhost_origins=False)
    refusal = check_upgrade(config, request("/nope", origin="https://evil.example"))
    assert refusal is not None and refusal.status == 404


# ---- client address -----------------------------------------------------------------------------


def test_address_is_the_peer_unless_behind_a_proxy() -> None:
    # Without a proxy X-Forwarded-For is whatever the client says: never trusted, or a client
    # could dodge a block by naming another address.
    spoofed = request(x_forwarded_for="203.0.113.9")
    assert spoofed.client_address(DEV) == "198.51.100.7"


def test_behind_a_proxy_the_address_is_the_forwarded_one() -> None:
    config = GatewayConfig(behind_tls_proxy=True)
    assert request(x_forwarded_for="203.0.113.9").client_address(config) == "203.0.113.9"
    assert request(x_forwarded_for=" 203.0.113.9 ").client_address(config) == "203.0.113.9"
    assert request().client_address(config) == "198.51.100.7"
    assert request(x_forwarded_for="").client_address(config) == "198.51.100.7"
