"""The composition root: build every part from `Settings` and wire them together."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry

from bugstream import operations
from bugstream.api import errors as api_errors
from bugstream.api.body_limit import BodyLimitMiddleware
from bugstream.api.login_throttle import LoginThrottle
from bugstream.api.router import api_router
from bugstream.auth.passwords import hash_password, verify_password
from bugstream.auth.tokens import TokenConfig
from bugstream.bus.base import Bus
from bugstream.bus.factory import create_bus, create_presence, create_slots, create_tickets
from bugstream.bus.slots import ConnectionSlots
from bugstream.domain.enums import Role
from bugstream.domain.models import User, UserCreate
from bugstream.domain.origins import LOCAL_ORIGIN_PATTERN
from bugstream.domain.tickets import TicketLedger
from bugstream.gateway.config import GatewayConfig
from bugstream.gateway.gateway import Gateway
from bugstream.gateway.sse import SseSink
from bugstream.gateway.uvicorn_protocol import GATEWAY_STATE_KEY
from bugstream.observability.http_metrics import RequestCounterMiddleware
from bugstream.observability.metrics import PrometheusTelemetry, StateCollector, StateSources
from bugstream.observability.summary import PerformanceSummary
from bugstream.services.capture import CaptureWorker
from bugstream.services.capture_backlog import CaptureBacklogProbe
from bugstream.services.context import ServiceContext
from bugstream.services.reminders import ReminderScheduler
from bugstream.services.users import any_users, create_user
from bugstream.settings import Settings
from bugstream.store import migrate
from bugstream.store.change_listener import ChangeListener
from bugstream.store.database import Database
from bugstream.store.outbox import latest_event_id
from bugstream.store.relay import OutboxRelay, rebasing_position
from bugstream.web.api_docs import api_docs_router
from bugstream.web.routes import web_router

log = logging.getLogger("bugstream")


class Argon2Passwords:
    """`services.context.PasswordHashing` backed by `bugstream.auth.passwords` (argon2)."""

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(hash_password, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await asyncio.to_thread(verify_password, password_hash, password)


def token_config(settings: Settings) -> TokenConfig:
    return TokenConfig(
        secret=settings.resolve_jwt_secret(),
        public_key=settings.jwt_public_key,
        algorithms=tuple(settings.jwt_algorithms),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl_seconds=settings.access_token_ttl_seconds,
        leeway_seconds=settings.jwt_leeway_seconds,
    )


def service_context(settings: Settings) -> ServiceContext:
    db = Database.from_url(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    return ServiceContext(
        db=db,
        passwords=Argon2Passwords(),
        reminder_age=timedelta(seconds=settings.reminder_age_seconds),
    )


@dataclass(frozen=True)
class BootstrapAdmin:
    user: User
    password: str


async def bootstrap_admin(ctx: ServiceContext, settings: Settings) -> BootstrapAdmin | None:
    """On an empty database, create the first admin with a random password (shown once)."""
    if not settings.bootstrap_admin or await any_users(ctx):
        return None
    password = secrets.token_urlsafe(12)
    data = UserCreate(
        username=settings.admin_username,
        email=settings.admin_email,
        password=password,
        role=Role.ADMIN,
    )
    user = (await create_user(ctx, None, data)).value
    return BootstrapAdmin(user, password)


def announce_admin(admin: BootstrapAdmin) -> None:
    # Printed, not logged: the password must not end up in log storage.
    print(
        "\n  First run: created the admin account\n"
        f"    username: {admin.user.username}\n"
        f"    password: {admin.password}\n"
        "  It is shown only this once. Log in with POST /api/v1/auth/token.\n",
        flush=True,
    )


def gateway_config(settings: Settings) -> GatewayConfig:
    return GatewayConfig(
        ping_interval=settings.ws_ping_interval_seconds,
        idle_timeout=settings.ws_idle_timeout_seconds,
        max_connections_per_user=settings.ws_max_connections_per_user,
        max_connections=settings.ws_max_connections,
        max_message_bytes=settings.ws_max_message_bytes,
        max_frame_bytes=settings.ws_max_frame_bytes,
        rate_capacity=settings.ws_rate_limit_capacity,
        rate_refill_per_second=settings.ws_rate_limit_refill_per_second,
        max_backlog_bytes=settings.ws_max_backlog_bytes,
        conflate_backlog_bytes=settings.ws_conflate_backlog_bytes,
        slow_consumer_seconds=settings.ws_slow_consumer_seconds,
        send_buffer_bytes=settings.ws_send_buffer_bytes,
        abuse_threshold=settings.ws_abuse_threshold,
        abuse_window=settings.ws_abuse_window_seconds,
        block_seconds=settings.ws_block_seconds,
        allowed_origins=settings.browser_origins,
        allow_localhost_origins=not settings.is_production,
        behind_tls_proxy=settings.behind_tls_proxy,
        require_tls=settings.is_production and not settings.behind_tls_proxy,
        shutdown_grace=settings.shutdown_grace_seconds,
        access_load_concurrency=max(1, settings.db_pool_size // 2),
        max_pending_handshakes=settings.ws_max_pending_handshakes,
        compression=settings.ws_compression,
    )


class Runtime:
    """Everything that runs while the application is up: bus, relay, gateway, scheduler."""

    def __init__(
        self,
        settings: Settings,
        ctx: ServiceContext,
        tokens: TokenConfig,
        telemetry: PrometheusTelemetry,
        *,
        first_run_admin: bool = True,
    ) -> None:
        self.settings = settings
        #: Make (and print) the first-run admin at startup; `bugstream serve` does it itself,
        #: once its port is bound, so that a server that cannot start shows no password.
        self.first_run_admin = first_run_admin
        self.ctx = ctx
        self.tokens = tokens
        self.telemetry = telemetry
        self.summary: PerformanceSummary | None = None
        self.bus: Bus | None = None
        self.relay: OutboxRelay | None = None
        self.gateway: Gateway | None = None
        self.slots: ConnectionSlots | None = None
        self.capture: CaptureWorker | None = None
        self.listener: ChangeListener | None = None
        self.capture_backlog: CaptureBacklogProbe | None = None
        self.scheduler = ReminderScheduler(ctx, interval=settings.reminder_interval_seconds)
        #: Connection tickets (domain/tickets.py), where the bus is: REST issues, /ws spends.
        self.tickets: TicketLedger = create_tickets(settings.bus_url)

    async def start(self) -> None:
        settings, ctx = self.settings, self.ctx
        if settings.auto_migrate:
            await migrate.upgrade(ctx.db.engine)
        if self.first_run_admin:
            admin = await bootstrap_admin(ctx, settings)
            if admin is not None:
                announce_admin(admin)
        async with ctx.db.read() as repos:
            latest = await latest_event_id(repos.conn)
        # The replay window starts `replay_window_events` back, rebuilt from the outbox.
        window_start = max(0, latest - settings.replay_window_events)
        self.bus = create_bus(
            settings.bus_url,
            max_events=settings.replay_window_events,
            max_age=settings.replay_window_seconds,
            start_after=window_start,
        )
        await self.bus.start()
        self.relay = OutboxRelay(
            ctx.db,
            self.bus.publish,
            rebasing_position(
                ctx.db, self.bus.position, self.bus.rebase, window=settings.replay_window_events
            ),
            poll_interval=settings.relay_poll_interval_seconds,
            # A batch larger than the retention window would overrun the live readers.
            batch=min(500, settings.replay_window_events),
        )
        await self.relay.drain()
        ctx.db.on_events_committed.append(self.relay.wake)
        self.relay.start()
        # The per-user connection limit holds across every instance sharing the bus.
        self.slots = create_slots(
            settings.bus_url,
            lease_seconds=settings.ws_slot_lease_seconds,
            instance_ttl_seconds=settings.ws_instance_ttl_seconds,
        )
        self.slots.start()
        self.gateway = Gateway(
            ctx=ctx,
            tokens=self.tokens,
            bus=self.bus,
            config=gateway_config(settings),
            position=await self.bus.last_event_id(),
            slots=self.slots,
            tickets=self.tickets,
            # Who is online and viewing what, shared by every instance on the same bus.
            presence=create_presence(
                settings.bus_url, instance_ttl_seconds=settings.ws_instance_ttl_seconds
            ),
            telemetry=self.telemetry,
        )
        await self.gateway.start()
        gateway = self.gateway
        self.summary = PerformanceSummary(
            self.telemetry,
            connections=lambda: gateway.hub.connection_count,
            relay_lag=self.relay_lag,
            socket_writes=self.socket_writes,
            interval=settings.performance_summary_seconds,
        )
        self.summary.start()
        if settings.reminders_enabled:
            self.scheduler.start()
        if ctx.db.dialect == "postgresql":
            # Measured on every instance: with capture off everywhere, someone must notice.
            self.capture_backlog = CaptureBacklogProbe(
                ctx, interval=settings.change_capture_poll_seconds
            )
            self.capture_backlog.start()
        if ctx.db.dialect == "postgresql" and settings.change_capture_enabled:
            self.capture = CaptureWorker(ctx, interval=settings.change_capture_poll_seconds)
            self.capture.start()
            self.listener = ChangeListener(
                ctx.db.engine.url.render_as_string(hide_password=False), self.capture.wake
            )
            self.listener.start()

    def socket_writes(self) -> tuple[int, int]:
        """Socket writes of the fan-out so far, and the frames they carried."""
        if self.gateway is None:
            return (0, 0)
        return (self.gateway.hub.socket_writes, self.gateway.hub.frames_written)

    def relay_lag(self) -> int:
        return self.relay.lag if self.relay is not None else 0

    def state_sources(self) -> StateSources:
        def queued() -> tuple[int, int]:
            if self.gateway is None:
                return (0, 0)
            backlogs = [c.backlog() for c in self.gateway.hub.connections()]
            return (sum(backlogs), max(backlogs, default=0))

        def pool() -> tuple[int, int, int]:
            p: Any = self.ctx.db.engine.pool
            size = p.size() if hasattr(p, "size") else 0
            overflow = max(0, getattr(p, "_max_overflow", 0))
            used = p.checkedout() if hasattr(p, "checkedout") else 0
            return (int(size), int(overflow), int(used))

        def stream_kinds() -> tuple[int, int]:
            if self.gateway is None:
                return (0, 0)
            connections = self.gateway.hub.connections()
            streams = sum(1 for c in connections if isinstance(c.sink, SseSink))
            return (streams, self.gateway.presence.followers)

        return StateSources(
            connections=lambda: self.gateway.hub.connection_count if self.gateway else 0,
            connections_limit=lambda: self.settings.ws_max_connections,
            queued_bytes=queued,
            relay_lag=self.relay_lag,
            relay_published=lambda: self.relay.position if self.relay else 0,
            pool=pool,
            capture_oldest_pending=lambda: (
                self.capture_backlog.value if self.capture_backlog else 0.0
            ),
            socket_writes=self.socket_writes,
            stream_kinds=stream_kinds,
        )

    async def stop(self) -> None:
        """Stop every part, each within the shutdown grace: a step that hangs (a dependency
        that does not answer) is abandoned and named in the log, so SIGTERM always ends."""
        if self.relay is not None and self.relay.wake in self.ctx.db.on_events_committed:
            self.ctx.db.on_events_committed.remove(self.relay.wake)
        steps: list[tuple[str, Callable[[], Awaitable[None]] | None]] = [
            ("performance summary", self.summary.stop if self.summary else None),
            ("reminder scheduler", self.scheduler.stop),
            ("change listener", self.listener.stop if self.listener else None),
            ("change capture", self.capture.stop if self.capture else None),
            ("capture backlog probe", self.capture_backlog.stop if self.capture_backlog else None),
            ("gateway", self.gateway.stop if self.gateway else None),
            ("connection slots", self.slots.stop if self.slots else None),
            ("connection tickets", self.tickets.close),
            ("relay", self.relay.stop if self.relay else None),
            ("bus", self.bus.close if self.bus else None),
            ("database pool", self.ctx.db.dispose),
        ]
        grace = max(1.0, self.settings.shutdown_grace_seconds)
        for name, stop in steps:
            if stop is None:
                continue
            started = time.monotonic()
            try:
                async with asyncio.timeout(grace):
                    await stop()
            except TimeoutError:
                log.warning("shutdown: stopping the %s took over %.0f s; abandoned", name, grace)
            except Exception:
                log.exception("shutdown: stopping the %s failed", name)
            else:
                took = time.monotonic() - started
                if took > 1.0:
                    log.warning("shutdown: stopping the %s took %.1f s", name, took)


def add_cors(app: FastAPI, settings: Settings) -> None:
    """Browsers on the allowed origins may call the API and import /static/ files (the same
    policy as /ws: domain/origins.py). Tokens travel in the Authorization header, never in
    cookies, so credentials are not allowed; preflights are cached for 10 minutes. Added
    last, so it is the outermost middleware: its headers are on error answers too."""
    origins = settings.browser_origins
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"] if "*" in origins else list(origins),
        allow_origin_regex=None if settings.is_production else LOCAL_ORIGIN_PATTERN,
        allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Accept", "If-None-Match"],
        expose_headers=["Retry-After", "ETag", "Location"],
        max_age=600,
    )


def create_app(
    settings: Settings | None = None,
    *,
    ctx: ServiceContext | None = None,
    first_run_admin: bool = True,
) -> FastAPI:
    """The application. `ctx` replaces the service context built from settings (tests).
    `first_run_admin=False`: the caller makes the first-run admin (`bugstream serve` does,
    once its port is bound)."""
    settings = settings or Settings()
    config = token_config(settings)
    ctx = ctx or service_context(settings)

    registry = CollectorRegistry()
    telemetry = PrometheusTelemetry(registry)
    runtime = Runtime(settings, ctx, config, telemetry, first_run_admin=first_run_admin)
    registry.register(StateCollector(runtime.state_sources()))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        app.state.runtime = runtime
        try:
            await runtime.start()
            assert runtime.gateway is not None
            # GET /api/v1/events reads through the gateway's replay path (gateway/history.py).
            app.state.event_history = runtime.gateway.history
            # GET /api/v1/projects/{id}/presence reads the gateway's presence store.
            app.state.presence = runtime.gateway.presence.store
        except BaseException:
            # What started before the failure (the relay, the bus, loops) must not run on.
            await runtime.stop()
            raise
        try:
            # uvicorn hands lifespan state to the /ws protocol (gateway/uvicorn_protocol.py).
            yield {GATEWAY_STATE_KEY: runtime.gateway}
        finally:
            await runtime.stop()

    app = FastAPI(
        title="bugstream",
        version="0.1.0",
        summary="A bug tracker's REST API and a real-time event stream (/ws).",
        lifespan=lifespan,
        # /docs is bugstream's own (web/api_docs.py): FastAPI's loads Swagger UI from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.ctx = ctx
    app.state.token_config = config
    app.state.login_throttle = LoginThrottle(
        max_failures_per_user=settings.login_max_failures_per_user,
        max_failures_per_address=settings.login_max_failures_per_address,
        window=settings.login_window_seconds,
    )
    app.state.registry = registry
    app.state.telemetry = telemetry
    app.state.runtime = runtime
    api_errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestCounterMiddleware, registry=registry)
    add_cors(app, settings)
    app.include_router(api_router(history_max_limit=settings.history_max_limit))
    app.include_router(web_router())
    app.include_router(api_docs_router(app.openapi_url or "/openapi.json"))
    app.include_router(operations.router)
    return app
