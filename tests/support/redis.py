"""Redis for the test suites: a key prefix of its own per test, or a whole logical database.

Redis suites run when `BUGSTREAM_TEST_REDIS_URL` is set (`.ci/run` sets it), e.g.
`redis://127.0.0.1:6379/0`; without it they skip and say so (and fail under
`BUGSTREAM_REQUIRE_SERVICES=1`).

- `redis_prefix()`: the base URL and a unique key prefix; every key under it is deleted
  afterwards. Enough for anything that takes `prefix=` (RedisBus, RedisSlots).
- `dedicated_db()`: a URL naming a logical database no one else is using (claimed with a
  lock key in the base database, so concurrent test runs on one Redis do not collide),
  flushed before and after. For whatever uses the app's fixed prefix (`bugstream serve`
  processes) or must `FLUSHDB`.

Test modules wrap them in small fixtures of their own, e.g.::

    @pytest.fixture
    async def redis_url() -> AsyncIterator[str]:
        async with dedicated_db() as url:
            yield url
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from tests.conftest import skip_or_fail
from tests.support.net import free_port

REDIS_ENV = "BUGSTREAM_TEST_REDIS_URL"

#: Logical databases handed out by `dedicated_db` (a default Redis has 16: 0-15).
DEDICATED_DBS = tuple(range(8, 16))
#: A claim lapses on its own after this long, should a test run die without releasing it.
CLAIM_MS = 10 * 60 * 1000


def redis_base_url() -> str:
    """`BUGSTREAM_TEST_REDIS_URL`; skips (or fails in CI) when it is not set."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        skip_or_fail(f"Redis suites need {REDIS_ENV}=redis://127.0.0.1:6379/0")
    assert url is not None
    return url


def url_with_db(url: str, db: int) -> str:
    """The same server, logical database `db`."""
    scheme, rest = url.split("://", 1)
    host = rest.split("/", 1)[0].split("?", 1)[0]
    return f"{scheme}://{host}/{db}"


async def delete_prefix(client: Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
    for start in range(0, len(keys), 500):
        await client.delete(*keys[start : start + 500])


@asynccontextmanager
async def redis_prefix() -> AsyncIterator[tuple[str, str]]:
    """`(url, prefix)`: a key prefix no other test uses, its keys deleted afterwards."""
    url = redis_base_url()
    prefix = f"bugstream-test-{uuid.uuid4().hex[:12]}"
    client = Redis.from_url(url)
    try:
        yield url, prefix
    finally:
        await delete_prefix(client, prefix)
        await client.aclose()


@asynccontextmanager
async def dedicated_db(*, wait_seconds: float = 30.0) -> AsyncIterator[str]:
    """A URL for a logical database of its own, empty at the start and flushed at the end."""
    base = redis_base_url()
    admin = Redis.from_url(base)
    token = uuid.uuid4().hex
    claimed: int | None = None
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while claimed is None:
            for db in DEDICATED_DBS:
                if await admin.set(f"bugstream-test:db-claim:{db}", token, nx=True, px=CLAIM_MS):
                    claimed = db
                    break
            else:
                if loop.time() > deadline:
                    raise AssertionError(f"no free Redis test database among {DEDICATED_DBS}")
                await asyncio.sleep(0.2)
        url = url_with_db(base, claimed)
        client = Redis.from_url(url)
        try:
            await client.flushdb()
            yield url
        finally:
            try:
                await client.flushdb()
            finally:
                await client.aclose()
    finally:
        if claimed is not None:
            key = f"bugstream-test:db-claim:{claimed}"
            if await admin.get(key) == token.encode():
                await admin.delete(key)
        await admin.aclose()


class ThrowawayRedis:
    """A redis-server process on a free loopback port, without any persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            skip_or_fail("this test runs a redis-server of its own: install redis-server")
        assert binary is not None
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        try:
            for _ in range(100):
                try:
                    await client.ping()
                    return
                except Exception:
                    await asyncio.sleep(0.05)
            raise AssertionError("redis-server did not start")
        finally:
            await client.aclose()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
