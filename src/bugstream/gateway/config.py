"""The gateway's settings, built from `bugstream.settings.Settings` by the composition root."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    path: str = "/ws"
    ping_interval: float = 30.0
    #: A connection that has shown no life (no frame at all, pongs included) for this long
    #: is closed with 4100.
    idle_timeout: float = 60.0
    max_connections_per_user: int = 3
    max_connections: int = 10_000
    #: Largest inbound message answered normally; larger ones get `message_too_large`.
    max_message_bytes: int = 65_536
    #: Largest inbound message read at all; larger ones close the connection with 1009.
    max_frame_bytes: int = 1_048_576
    rate_capacity: float = 60.0
    rate_refill_per_second: float = 1.0
    #: Bytes a connection may have waiting (ours and the transport's) before it is cut off.
    max_backlog_bytes: int = 4_194_304
    #: Above this backlog, superseded state events are conflated for the lagging client.
    conflate_backlog_bytes: int = 1_048_576
    #: How long a backlog may stay over `max_backlog_bytes` before the client is cut off (a
    #: burst larger than the bound drains in time from a client that reads).
    slow_consumer_seconds: float = 2.0
    #: The kernel's send buffer per socket (SO_SNDBUF); 0: the kernel's own autotuning. What a
    #: client that stops reading costs the server is this plus `max_backlog_bytes`.
    send_buffer_bytes: int = 0
    #: Strikes (invalid tokens, rate-limit hits, oversize messages) within `abuse_window`
    #: seconds that block an address or a user for `block_seconds`.
    abuse_threshold: int = 20
    abuse_window: float = 60.0
    block_seconds: float = 300.0
    #: Origins allowed besides the server's own; "*" allows any.
    allowed_origins: tuple[str, ...] = ()
    #: Also allow any http(s)://localhost, 127.0.0.1 or [::1] origin (development).
    allow_localhost_origins: bool = True
    #: Behind a TLS-terminating proxy: refuse upgrades whose X-Forwarded-Proto is not https,
    #: and take the client address from X-Forwarded-For.
    behind_tls_proxy: bool = False
    require_tls: bool = False
    shutdown_grace: float = 5.0
    #: Access loads (one read transaction each) run at once for connecting users; the rest
    #: queue (a reconnect storm must not exhaust the database pool).
    access_load_concurrency: int = 5
    #: Handshakes being authenticated at once; more are refused with HTTP 503 (clients retry
    #: with backoff) rather than queued past the point where they would time out.
    max_pending_handshakes: int = 256
    #: Negotiate permessage-deflate (RFC 7692) with clients that offer it.
    compression: bool = True
