"""Checks made on the HTTP upgrade request, before a WebSocket exists."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from bugstream.domain.origins import origin_allowed as is_allowed_origin
from bugstream.gateway.config import GatewayConfig


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """The parts of an upgrade request the gateway looks at (header names lower-case)."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    peer_address: str
    tls: bool

    @classmethod
    def parse(
        cls, target: str, headers: dict[str, str], peer_address: str, tls: bool
    ) -> UpgradeRequest:
        split = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        return cls(split.path, query, headers, peer_address, tls)

    def client_address(self, config: GatewayConfig) -> str:
        if config.behind_tls_proxy:
            # The LAST entry is the one our proxy appended (nginx's $proxy_add_x_forwarded_for);
            # earlier entries come from the client and could be forged to dodge a block.
            forwarded = self.headers.get("x-forwarded-for", "")
            last = forwarded.rsplit(",", 1)[-1].strip()
            if last:
                return last
        return self.peer_address

    def token(self) -> str | None:
        """The JWT from `Authorization: Bearer ...`, else from `?token=`."""
        auth = self.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return self.query.get("token") or None


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    reason: str


def origin_allowed(config: GatewayConfig, origin: str | None, host: str | None) -> bool:
    """The server's origin policy (domain/origins.py) with the gateway's settings."""
    return is_allowed_origin(
        origin, config.allowed_origins, allow_local=config.allow_localhost_origins, host=host
    )


def check_upgrade(config: GatewayConfig, request: UpgradeRequest) -> Refusal | None:
    """Refuse at the HTTP level what must never become a WebSocket."""
    if request.path != config.path:
        return Refusal(404, "no WebSocket endpoint here; use " + config.path)
    return check_origin_and_transport(config, request)


def check_origin_and_transport(config: GatewayConfig, request: UpgradeRequest) -> Refusal | None:
    """What every stream needs (a WebSocket or its SSE fallback): TLS where required, and an
    allowed origin."""
    if config.behind_tls_proxy:
        proto = request.headers.get("x-forwarded-proto", "").split(",", 1)[0].strip().lower()
        if proto != "https":
            return Refusal(403, "streams must arrive over https (X-Forwarded-Proto)")
    elif config.require_tls and not request.tls:
        return Refusal(403, "streams must use TLS (wss:// or https://)")
    if not origin_allowed(config, request.headers.get("origin"), request.headers.get("host")):
        return Refusal(403, "origin not allowed")
    return None
