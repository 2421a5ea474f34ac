"""Several real `bugstream serve` processes on one PostgreSQL database and one Redis.

`running_cluster(workdir)` gives a `Cluster`: a fresh PostgreSQL database (created from
`BUGSTREAM_TEST_POSTGRES_URL`, migrated, dropped afterwards), a Redis logical database of its
own (tests/support/redis.py), one JWT secret, and `await cluster.start("a")` to run an instance
as an operator would (`python -m bugstream.cli serve --port N`, configured by BUGSTREAM_*
variables). `cluster.ctx` is a service context on the same database, for setting up users and
projects and for writing events from the test itself; `cluster.token_for(user)` signs tokens
every instance accepts. `connect(instance, token)` opens a WebSocket client (the `Client` of
tests/support/live.py). Every process is stopped at the end (SIGKILL if SIGTERM is not enough).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bugstream.auth.tokens import TokenConfig, issue_token
from bugstream.domain.models import User
from bugstream.services.context import ServiceContext
from bugstream.store import migrate
from bugstream.store.database import Database, create_engine
from tests.conftest import POSTGRES_ENV, FastPasswords, skip_or_fail
from tests.support.live import Client
from tests.support.net import free_port
from tests.support.redis import dedicated_db

SECRET = "cluster-tests-secret-0123456789abcdef0123456789"
START_TIMEOUT = 30.0
TIMEOUT = 5.0


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The URL of a new, migrated PostgreSQL database, dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        skip_or_fail(f"cluster suites need {POSTGRES_ENV}=postgresql+asyncpg://user@host/db")
    assert base is not None
    name = f"bugstream_cluster_{uuid.uuid4().hex[:10]}"
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(base)
    try:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine = create_engine(url)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()
        yield url
    finally:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@dataclass
class Instance:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: no shutdown, no goodbye to clients, leases left to expire."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    async def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait, 10)
        self.log_file.close()


@dataclass
class Cluster:
    database_url: str
    bus_url: str
    workdir: Path
    settings: dict[str, str] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tokens = TokenConfig(secret=SECRET)
        self.db = Database.from_url(self.database_url, pool_size=10, max_overflow=10)
        self.ctx = ServiceContext(db=self.db, passwords=FastPasswords())

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BUGSTREAM_")}
        env.update(
            {
                "BUGSTREAM_DATABASE_URL": self.database_url,
                "BUGSTREAM_BUS_URL": self.bus_url,
                "BUGSTREAM_JWT_SECRET": SECRET,
                "BUGSTREAM_BOOTSTRAP_ADMIN": "false",
                "BUGSTREAM_AUTO_MIGRATE": "false",  # migrated once, before any instance
                "BUGSTREAM_REMINDERS_ENABLED": "false",
                "BUGSTREAM_DATA_DIR": str(self.workdir / "var"),
                "BUGSTREAM_RELAY_POLL_INTERVAL_SECONDS": "0.05",
                "BUGSTREAM_DB_POOL_SIZE": "4",
                "BUGSTREAM_DB_MAX_OVERFLOW": "4",
                "BUGSTREAM_SHUTDOWN_GRACE_SECONDS": "1",
                "BUGSTREAM_LOG_LEVEL": "WARNING",
            }
        )
        env.update({f"BUGSTREAM_{k.upper()}": v for k, v in self.settings.items()})
        return env

    async def start(self, name: str) -> Instance:
        """Run one instance; returns once it answers HTTP."""
        port = free_port()
        log_path = self.workdir / f"instance-{name}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "bugstream.cli", "serve", "--port", str(port)],
            cwd=self.workdir,
            env=self.env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        instance = Instance(name, port, process, log_path, log_file)
        self.instances.append(instance)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        async with httpx.AsyncClient(base_url=instance.http_url, timeout=1.0) as http:
            while loop.time() < deadline:
                if not instance.alive():
                    raise AssertionError(f"instance {name} exited:\n{instance.log()}")
                with contextlib.suppress(httpx.TransportError):
                    response = await http.get("/api/v1/users/me")
                    if response.status_code == 401:
                        return instance
                await asyncio.sleep(0.1)
        raise AssertionError(f"instance {name} did not start:\n{instance.log()}")

    def token_for(self, user: User, ttl_seconds: int = 3600) -> str:
        return issue_token(
            self.tokens, user_id=user.id, role=user.role.value, ttl_seconds=ttl_seconds
        )

    def http(self, instance: Instance, user: User) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token_for(user)}"}
        return httpx.AsyncClient(base_url=instance.http_url, headers=headers, timeout=TIMEOUT)

    async def close(self) -> None:
        for instance in self.instances:
            await instance.stop()
        await self.db.dispose()


@asynccontextmanager
async def running_cluster(workdir: Path, **settings: Any) -> AsyncIterator[Cluster]:
    """A cluster on a fresh database and a Redis database of its own; `settings` are extra
    BUGSTREAM_* variables by Settings field name, e.g. `ws_slot_lease_seconds=2`."""
    async with fresh_database() as database_url, dedicated_db() as bus_url:
        cluster = Cluster(database_url, bus_url, workdir, {k: str(v) for k, v in settings.items()})
        try:
            yield cluster
        finally:
            await cluster.close()


async def connect(
    instance: Instance, token: str, *, query: str = "", welcome: bool = True
) -> Client:
    """A WebSocket client on `instance`; with `welcome`, its welcome message is checked."""
    url = f"{instance.ws_url}?token={token}" + (f"&{query}" if query else "")
    return await Client.open(url, welcome=welcome, max_size=None)
