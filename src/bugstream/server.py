"""Running the application under uvicorn, with `/ws` served by the gateway's own protocol."""

from __future__ import annotations

import gc
import socket

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


class StreamingServer(uvicorn.Server):
    """uvicorn, ending the SSE streams first when it shuts down: it waits for open HTTP
    responses (up to the shutdown grace), and a stream ends only when the server ends it.
    Its clients get `event: close` (1001) and resume elsewhere."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        runtime = getattr(self._app.state, "runtime", None)
        if runtime is not None and runtime.gateway is not None:
            runtime.gateway.end_streams()
        await super().shutdown(sockets)


class _AnnouncingServer(StreamingServer):
    """Once the port is bound: makes the first-run admin (shown once) and says where the board
    is. A server that could not bind (the port in use) makes no admin whose password nobody
    would see."""

    def __init__(self, config: uvicorn.Config, settings: Settings, app: FastAPI) -> None:
        super().__init__(config, app)
        self._settings = settings

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started or self.should_exit:
            return
        from bugstream.app import announce_admin, bootstrap_admin

        admin = await bootstrap_admin(self._app.state.ctx, self._settings)
        if admin is not None:
            announce_admin(admin)
        port = self.servers[0].sockets[0].getsockname()[1] if self.servers else self._settings.port
        print(ready_banner(self._settings, port), flush=True)  # last: "ready" for scripts too


def ready_banner(settings: Settings, port: int) -> str:
    scheme = "https" if settings.serves_tls else "http"
    host = settings.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (naming, not binding: every interface)
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    url = f"{scheme}://{host}:{port}"
    return f"\n  bugstream is running: the live board at {url}/ , the API docs at {url}/docs\n"


def serve(settings: Settings) -> None:
    from bugstream.app import create_app
    from bugstream.observability.logging import configure_logging

    settings.check_transport_security()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, first_run_admin=False)
    config = uvicorn_config(app, settings)
    tune_garbage_collector()
    _AnnouncingServer(config, settings, app).run()


def tune_garbage_collector() -> None:
    """Fewer, cheaper cyclic collections for a server that holds thousands of connections.

    What is loaded by now (modules, the application) stays for the process's life: frozen,
    full collections no longer walk it. And a collection of the youngest objects every
    50,000 allocations instead of 700: a connect or a fan-out pass allocates thousands of
    objects that live on (connections) or die by reference counting (frames), and each young
    collection promoted the long-lived ones towards ever longer full collections. Measured:
    5,000 connects took 0.49-0.53 ms of CPU each instead of 0.55-0.61 (docs/benchmarks.md).
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
