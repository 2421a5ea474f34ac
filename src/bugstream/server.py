"""Running the application under uvicorn, with `/ws` served by the gateway's own protocol."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from bugstream.gateway.uvicorn_protocol import GatewayProtocol
from bugstream.settings import Settings


def uvicorn_config(app: FastAPI, settings: Settings, **overrides: object) -> uvicorn.Config:
    settings.check_transport_security()
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "ws": GatewayProtocol,
        "lifespan": "on",
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "proxy_headers": settings.behind_tls_proxy,
        "forwarded_allow_ips": "*" if settings.behind_tls_proxy else None,
        "log_level": settings.log_level.lower(),
        # Logging is configured by bugstream (observability.logging), not by uvicorn.
        "log_config": None,
    }
    if settings.serves_tls:
        options["ssl_certfile"] = str(settings.tls_certfile)
        options["ssl_keyfile"] = str(settings.tls_keyfile)
    options.update(overrides)
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]


def serve(settings: Settings) -> None:
    from bugstream.app import create_app
    from bugstream.observability.logging import configure_logging

    settings.check_transport_security()
    configure_logging(settings.log_level, settings.log_format)
    config = uvicorn_config(create_app(settings), settings)
    uvicorn.Server(config).run()
