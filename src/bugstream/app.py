"""The composition root: build every part from `Settings` and wire them together."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI

from bugstream.api import errors as api_errors
from bugstream.api.body_limit import BodyLimitMiddleware
from bugstream.api.router import api_router
from bugstream.auth.passwords import hash_password, verify_password
from bugstream.auth.tokens import TokenConfig
from bugstream.domain.enums import Role
from bugstream.domain.models import User, UserCreate
from bugstream.services.context import ServiceContext
from bugstream.services.reminders import ReminderScheduler
from bugstream.services.users import any_users, create_user
from bugstream.settings import Settings
from bugstream.store import migrate
from bugstream.store.database import Database

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


def create_app(settings: Settings | None = None, *, ctx: ServiceContext | None = None) -> FastAPI:
    """The application. `ctx` replaces the service context built from settings (tests)."""
    settings = settings or Settings()
    config = token_config(settings)
    ctx = ctx or service_context(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await migrate.upgrade(ctx.db.engine)
        admin = await bootstrap_admin(ctx, settings)
        if admin is not None:
            announce_admin(admin)
        scheduler = ReminderScheduler(ctx, interval=settings.reminder_interval_seconds)
        if settings.reminders_enabled:
            scheduler.start()
        try:
            yield
        finally:
            await scheduler.stop()
            await ctx.db.dispose()

    app = FastAPI(
        title="bugstream",
        version="0.1.0",
        summary="A bug tracker's REST API and a real-time event stream (/ws).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ctx = ctx
    app.state.token_config = config
    api_errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.include_router(api_router())
    return app
