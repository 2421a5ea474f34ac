"""Configuration: every setting is an environment variable `BUGSTREAM_<NAME>`.

Defaults run with no setup at all: SQLite under `./var/`, the in-memory bus, and a development
JWT secret created on first run and kept in `./var/jwt-secret`. docs/deployment.md lists every
variable; keep it in step with this class.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(Exception):
    """The settings cannot work as given; the message says which variable to set."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUGSTREAM_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("var")

    # Storage
    database_url: str = ""
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    auto_migrate: bool = True

    # Event bus
    bus_url: str = "memory://"

    # Authentication
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_public_key_file: Path | None = None
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["HS256"])
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = Field(default=0, ge=0)
    access_token_ttl_seconds: int = Field(default=3600, ge=1)

    # First run: the admin account created when there are no users at all.
    bootstrap_admin: bool = True
    admin_username: str = "admin"
    admin_email: str = "admin@example.com"

    # REST
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    #: Failed sign-ins (POST /auth/token) allowed per username, and per client address,
    #: within `login_window_seconds`; past them, 429 with Retry-After.
    login_max_failures_per_user: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_window_seconds: float = Field(default=60.0, gt=0)

    # TLS (wss://): serve it directly, or sit behind a proxy that terminates it.
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    behind_tls_proxy: bool = False

    # WebSocket gateway (/ws)
    ws_ping_interval_seconds: float = Field(default=30.0, gt=0)
    ws_idle_timeout_seconds: float = Field(default=60.0, gt=0)
    ws_max_connections_per_user: int = Field(default=3, ge=1)
    ws_max_connections: int = Field(default=10_000, ge=1)
    #: Handshakes in progress at once; more are refused with 503 (a reconnect storm queues
    #: in the clients' backoff, not in the server).
    ws_max_pending_handshakes: int = Field(default=256, ge=1)
    ws_max_message_bytes: int = Field(default=65_536, ge=64)
    ws_max_frame_bytes: int = Field(default=1_048_576, ge=1024)
    ws_rate_limit_capacity: float = Field(default=60.0, ge=1)
    ws_rate_limit_refill_per_second: float = Field(default=1.0, gt=0)
    ws_max_backlog_bytes: int = Field(default=4_194_304, ge=65_536)
    #: Above this backlog a lagging client's superseded state events are conflated.
    ws_conflate_backlog_bytes: int = Field(default=1_048_576, ge=16_384)
    #: How long a backlog may stay over ws_max_backlog_bytes before the client is cut off.
    ws_slow_consumer_seconds: float = Field(default=2.0, ge=0)
    #: SO_SNDBUF of each WebSocket; 0 leaves it to the kernel's autotuning (net.ipv4.tcp_wmem).
    ws_send_buffer_bytes: int = Field(default=0, ge=0)
    ws_abuse_threshold: int = Field(default=20, ge=1)
    ws_abuse_window_seconds: float = Field(default=60.0, gt=0)
    ws_block_seconds: float = Field(default=300.0, ge=0)
    #: With a Redis bus: how long a crashed instance's connections keep counting.
    ws_slot_lease_seconds: float = Field(default=30.0, gt=0)
    #: With Redis: how long a killed instance's connections still count (its liveness key).
    ws_instance_ttl_seconds: float = Field(default=3.0, gt=0)
    #: Browser origins, besides the server's own, that may call the REST API, load /static/
    #: files and open /ws (a JSON list; "*" for any). Outside production, pages on this
    #: machine (localhost, 127.0.0.1, [::1]) are allowed too.
    allowed_origins: list[str] = Field(default_factory=list)
    #: The older name, for /ws only at first; now the same as allowed_origins (both count).
    ws_allowed_origins: list[str] = Field(default_factory=list)
    #: How long a connection ticket (POST /api/v1/auth/ws-ticket) may wait to be spent.
    ws_ticket_ttl_seconds: float = Field(default=30.0, gt=0, le=300)
    #: permessage-deflate (RFC 7692) on /ws for clients that offer it; off: never negotiated.
    ws_compression: bool = True
    shutdown_grace_seconds: float = Field(default=5.0, ge=0)

    # PostgreSQL change capture (rows changed by other programs become events)
    change_capture_enabled: bool = True
    change_capture_poll_seconds: float = Field(default=1.0, gt=0)

    # Event log kept for resuming clients
    replay_window_events: int = Field(default=10_000, ge=1)
    replay_window_seconds: float = Field(default=3600.0, gt=0)
    relay_poll_interval_seconds: float = Field(default=0.5, gt=0)
    #: The most events one page of GET /api/v1/events may ask for (`limit`).
    history_max_limit: int = Field(default=1000, ge=1, le=10_000)

    # Reminders
    reminders_enabled: bool = True
    reminder_age_seconds: float = Field(default=3 * 86400, gt=0)
    reminder_interval_seconds: float = Field(default=3600, gt=0)

    # Logging
    log_level: str = "INFO"
    #: `json` (one JSON object per line) or `console`; empty: json in production.
    log_format: str = ""
    performance_summary_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        if not self.log_format:
            self.log_format = "json" if self.env is Environment.PRODUCTION else "console"
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'bugstream.db'}"
        if self.ws_conflate_backlog_bytes > self.ws_max_backlog_bytes:
            raise ValueError(
                "BUGSTREAM_WS_CONFLATE_BACKLOG_BYTES must not exceed BUGSTREAM_WS_MAX_BACKLOG_BYTES"
            )
        if self.jwt_public_key is None and self.jwt_public_key_file is not None:
            self.jwt_public_key = self.jwt_public_key_file.read_text()
        return self

    @property
    def browser_origins(self) -> tuple[str, ...]:
        """`allowed_origins` and its alias `ws_allowed_origins`, together."""
        return tuple(dict.fromkeys([*self.allowed_origins, *self.ws_allowed_origins]))

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def serves_tls(self) -> bool:
        return self.tls_certfile is not None and self.tls_keyfile is not None

    def check_transport_security(self) -> None:
        """Production serves wss:// itself or sits behind a TLS-terminating proxy."""
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ConfigurationError(
                "set both BUGSTREAM_TLS_CERTFILE and BUGSTREAM_TLS_KEYFILE, or neither"
            )
        if self.is_production and not self.serves_tls and not self.behind_tls_proxy:
            raise ConfigurationError(
                "production requires TLS: set BUGSTREAM_TLS_CERTFILE and BUGSTREAM_TLS_KEYFILE, "
                "or BUGSTREAM_BEHIND_TLS_PROXY=true behind a proxy that terminates TLS"
            )

    def resolve_jwt_secret(self) -> str | None:
        """The HS256 secret: configured, or (development only) kept in `data_dir/jwt-secret`.

        Production never invents a secret: tokens must survive restarts and be the same on
        every instance, so it must be configured.
        """
        if self.jwt_secret:
            return self.jwt_secret
        if "HS256" not in self.jwt_algorithms:
            return None
        if self.is_production:
            raise ConfigurationError(
                "BUGSTREAM_JWT_SECRET must be set in production (or BUGSTREAM_JWT_ALGORITHMS "
                "without HS256 and BUGSTREAM_JWT_PUBLIC_KEY for an external identity provider)"
            )
        path = self.data_dir / "jwt-secret"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(secret + "\n")
        return secret
