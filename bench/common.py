"""Shared pieces of the benchmarks: server processes, /proc readings, seeding, a raw WebSocket
client, the event driver and result tables.

Everything runs on loopback. The servers under test are separate processes (their CPU time and
RSS are read from /proc); the clients and the driver share one asyncio loop in the bench
process, and are the same code for bugstream and for the FastAPI baseline.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PASSWORD = "bench password 123"
TITLE_PREFIX = "bench "


# ---- /proc ----------------------------------------------------------------------------------


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (not its children), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (not its children), in seconds."""
    return sum(cpu_split(pid))


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it (e.g. `taskset`'s or `uv run`'s child)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, ()))
    return tree


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of `pid` and all its descendants (threads included), in seconds."""
    user = system = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            u, s = cpu_split(p)
            user += u
            system += s
    return user, system


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and all its descendants (threads included), in seconds."""
    return sum(tree_cpu_split(pid))


def tree_write_calls(pid: int) -> int:
    """write-type system calls (write, writev, ...; /proc/<pid>/io `syscw`) of the tree.

    libuv (uvloop, Node) writes sockets with write/writev, so deliveries / data writes is the
    frames per write of a libuv server.
    """
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{p}/io") as f:
            for line in f:
                if line.startswith("syscw:"):
                    total += int(line.split()[1])
    return total


def pin_self(core: int | None) -> None:
    """Run the bench process (clients and driver) on one core."""
    if core is not None:
        os.sched_setaffinity(0, {core})


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---- server processes -----------------------------------------------------------------------


@dataclass
class ServerProcess:
    """A server under test: `bugstream serve` or the baseline, in its own process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    #: Pin the server to this core (`taskset -c`), None to let it float.
    core: int | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        """CPU seconds of the whole process tree."""
        return tree_cpu_seconds(self.pid)

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the whole process tree."""
        return tree_cpu_split(self.pid)

    def write_calls(self) -> int:
        return tree_write_calls(self.pid)

    def rss(self) -> int:
        return rss_bytes(self.pid)

    async def start(self, wait_s: float = 60.0) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230 - the child's log
        argv = self.argv if self.core is None else ["taskset", "-c", str(self.core), *self.argv]
        self.proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter and script
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
        log.close()
        deadline = time.monotonic() + wait_s
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.http_url + "/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start within {wait_s} s; see {self.log_path}")

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    async def wait_exit(self, wait_s: float = 30.0) -> int | None:
        assert self.proc is not None
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.01)
        self.proc.kill()
        return self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            await self.wait_exit(20.0)


def server_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUGSTREAM_")}
    env.update(extra)
    return env


def bugstream_server(
    name: str,
    data_dir: Path,
    port: int,
    *,
    database_url: str | None = None,
    bus_url: str | None = None,
    per_user_limit: int = 3,
    max_connections: int = 10_000,
    extra: dict[str, str] | None = None,
) -> ServerProcess:
    env = {
        "BUGSTREAM_DATA_DIR": str(data_dir),
        "BUGSTREAM_JWT_SECRET": SECRET,
        "BUGSTREAM_BOOTSTRAP_ADMIN": "false",
        "BUGSTREAM_LOG_LEVEL": "WARNING",
        "BUGSTREAM_REMINDERS_ENABLED": "false",
        "BUGSTREAM_PORT": str(port),
        "BUGSTREAM_WS_MAX_CONNECTIONS_PER_USER": str(per_user_limit),
        "BUGSTREAM_WS_MAX_CONNECTIONS": str(max_connections),
    }
    if database_url:
        env["BUGSTREAM_DATABASE_URL"] = database_url
    if bus_url:
        env["BUGSTREAM_BUS_URL"] = bus_url
    env.update(extra or {})
    argv = [sys.executable, "-m", "bugstream.cli", "serve"]
    return ServerProcess(name, argv, server_env(env), port, data_dir / f"{name}.log")


def baseline_server(name: str, data_dir: Path, port: int) -> ServerProcess:
    argv = [sys.executable, str(BENCH_DIR / "baseline_server.py"), "--port", str(port)]
    env = server_env({"BENCH_JWT_SECRET": SECRET})
    return ServerProcess(name, argv, env, port, data_dir / f"{name}.log")


NODE_DIR = BENCH_DIR / "node_ws"


def node_server(name: str, data_dir: Path, port: int) -> ServerProcess:
    """Node's `ws` broadcast loop (bench/node_ws/server.mjs); installs its packages once."""
    if not (NODE_DIR / "node_modules" / "ws").exists():
        subprocess.run(["npm", "ci", "--silent"], cwd=NODE_DIR, check=True)  # noqa: S607
        # npm ci, not install: the versions in package-lock.json
    argv = ["node", str(NODE_DIR / "server.mjs"), "--port", str(port)]
    env = server_env({"BENCH_JWT_SECRET": SECRET})
    return ServerProcess(name, argv, env, port, data_dir / f"{name}.log")


def baseline_kind_server(kind: str, name: str, data_dir: Path, port: int) -> ServerProcess:
    """One of the baselines by its --servers name."""
    if kind == "node":
        return node_server(name, data_dir, port)
    return baseline_server(name, data_dir, port)


def make_workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"bugstream-{prefix}-"))


# ---- seeding through the service layer ------------------------------------------------------


@dataclass
class Seed:
    admin_id: int
    project_id: int
    user_ids: list[int]


class _FastPasswords:
    """Password hashing for seeding thousands of users: one real argon2 hash, reused.

    The services hash with argon2 (tens of ms each, by design); the benchmark users never log
    in with a password (they get minted tokens), so one precomputed hash serves them all.
    """

    def __init__(self) -> None:
        from bugstream.auth.passwords import hash_password

        self._hash = hash_password(PASSWORD)

    async def hash(self, password: str) -> str:
        return self._hash

    async def verify(self, password_hash: str, password: str) -> bool:
        return password == PASSWORD


async def seed(database_url: str, data_dir: Path, users: int) -> Seed:
    """Migrate, then create an admin, one project and `users` developers who are its members,
    all through bugstream's service functions (so the outbox has their events)."""
    from bugstream.domain.enums import Role
    from bugstream.domain.models import MembershipAdd, ProjectCreate, UserCreate
    from bugstream.services import projects
    from bugstream.services import users as user_service
    from bugstream.services.context import Actor, ServiceContext
    from bugstream.store import migrate
    from bugstream.store.database import Database

    db = Database.from_url(database_url, pool_size=5, max_overflow=5)
    ctx = ServiceContext(db=db, passwords=_FastPasswords())
    try:
        await migrate.upgrade(db.engine)

        async def make(name: str, role: Role) -> int:
            data = UserCreate(
                username=name, email=f"{name}@example.com", password=PASSWORD, role=role
            )
            return (await user_service.create_user(ctx, None, data)).value.id

        admin_id = await make("benchadmin", Role.ADMIN)
        admin = Actor(user_id=admin_id, role=Role.ADMIN)
        project = (
            await projects.create_project(ctx, admin, ProjectCreate(name="bench", description=""))
        ).value
        ids: list[int] = []
        for i in range(users):
            uid = await make(f"dev{i}", Role.DEVELOPER)
            await projects.add_member(ctx, admin, project.id, MembershipAdd(user_id=uid))
            ids.append(uid)
        return Seed(admin_id, project.id, ids)
    finally:
        await db.dispose()


def token(user_id: int, role: str, ttl: int = 4 * 3600) -> str:
    from bugstream.auth.tokens import TokenConfig, issue_token

    config = TokenConfig(secret=SECRET, access_ttl_seconds=ttl)
    return issue_token(config, user_id=user_id, role=role)


async def create_postgres_db(name: str) -> str:
    """(Re)create database `name` on the local PostgreSQL; the SQLAlchemy URL."""
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def flush_redis(db: int) -> str:
    import redis.asyncio as redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=db)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return f"redis://127.0.0.1:6379/{db}"


# ---- a raw asyncio WebSocket client ---------------------------------------------------------


class Recorder:
    """What all clients of one run received, kept compactly for the whole run."""

    def __init__(self) -> None:
        self.sent_at: dict[int, float] = {}  # event seq -> monotonic time the request was made
        self.phase = ""
        self.latencies: array.array[float] = array.array("d")
        self.deliveries = 0
        self.last_delivery = 0.0
        self.keep_history = False
        #: Size of an event message as received (the JSON text, without the frame header).
        self.event_bytes = 0

    def reset(self, phase: str) -> None:
        self.phase = phase
        self.latencies = array.array("d")
        self.deliveries = 0
        self.last_delivery = 0.0


_EVENT_ID = b'"event_id":'
_TITLE = b'"title":'
_PREFIX = TITLE_PREFIX.encode()


def _event_id(message: bytes) -> int | None:
    """The event id of an event envelope (`..."event_id":N}`), None for other messages."""
    at = message.rfind(_EVENT_ID)
    if at < 0 or message[-1:] != b"}":
        return None
    try:
        return int(message[at + len(_EVENT_ID) : -1])
    except ValueError:
        return None


def _title_seq(message: bytes) -> int | None:
    """The sequence number in a bench event's title (`"title":"bench N"`)."""
    at = message.find(_TITLE)
    if at < 0:
        return None
    start = message.find(b'"', at + len(_TITLE)) + 1  # json.dumps puts a space before it
    if not message.startswith(_PREFIX, start):
        return None
    start += len(_PREFIX)
    return int(message[start : message.find(b'"', start)])


_KEY = base64.b64encode(b"bugstream-bench!").decode()
_MASK = b"\x00\x00\x00\x00"
_SYNC_TAIL = b"\x00\x00\xff\xff"  # what permessage-deflate leaves off each message


class WSClient(asyncio.Protocol):
    """One WebSocket client over a plain asyncio Protocol (no per-client task).

    Server frames are unmasked, so reading is a few slices; the only frames it sends are pongs
    and the close answer (masked with a zero key, which RFC 6455 allows). It records for every
    event: its seq (from the bug title), event id and arrival time.
    """

    def __init__(self, index: int, rec: Recorder, *, offer: str = "") -> None:
        self.index = index
        self.rec = rec
        #: A Sec-WebSocket-Extensions offer ("permessage-deflate"): compressed frames (RSV1)
        #: are then inflated before they are read.
        self.offer = offer
        #: Bytes read from the socket (frames with their headers), over the connection's life.
        self.received_bytes = 0
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.handshake_status = 0
        self.welcome: asyncio.Future[dict[str, Any]] | None = None
        self.closed: asyncio.Future[int] | None = None
        self.close_code = 0
        self.latest_event_id = 0  # welcome's, then the last event's
        self.events = 0
        self.out_of_order = 0
        self.welcome_at = 0.0
        self.welcome_count = 0
        self.other_messages: dict[str, int] = {}
        # history (storm): seq and event id and time of every event, in arrival order
        self.h_seq: array.array[int] = array.array("q")
        self.h_eid: array.array[int] = array.array("q")
        self.h_time: array.array[float] = array.array("d")
        self.on_close: Callable[[WSClient], None] | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.welcome is not None and not self.welcome.done():
            self.welcome.set_exception(ConnectionError(f"lost before welcome ({self.close_code})"))
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(self.close_code)
        if self.on_close is not None:
            self.on_close(self)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.received_bytes += len(data)
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[: end + 4]
            self.handshake_status = int(head[9:12])
            if self.handshake_status != 101:
                if self.welcome is not None and not self.welcome.done():
                    self.welcome.set_exception(ConnectionError(f"http {self.handshake_status}"))
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            b0 = buf[pos]
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                start = pos + 10
            if n - start < length:
                break
            payload = bytes(buf[start : start + length])
            pos = start + length
            if b0 & 0x40:  # permessage-deflate, no context takeover: each message on its own
                payload = zlib.decompressobj(wbits=-15).decompress(payload + _SYNC_TAIL)
            self._frame(b0 & 0x0F, payload, now)
        if pos:
            del buf[:pos]

    # -- frames
    def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        assert len(payload) < 126
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + _MASK + payload)

    def _frame(self, opcode: int, payload: bytes, now: float) -> None:
        if opcode == 1:
            self._message(payload, now)
        elif opcode == 9:
            self._send_frame(0xA, payload)
        elif opcode == 8:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self._send_frame(0x8, payload[:2])
            assert self.transport is not None
            self.transport.close()

    def _message(self, payload: bytes, now: float) -> None:
        # Events are most of the traffic: read their two numbers without parsing the JSON, so
        # that the client (one core for thousands of connections) keeps up with the servers.
        # Every server under test ends its envelope with "event_id":N}.
        eid = _event_id(payload)
        if eid is not None:
            if eid <= self.latest_event_id:
                self.out_of_order += 1
            self.latest_event_id = eid
            self.events += 1
            seq = _title_seq(payload)
            if seq is None:
                return
            rec = self.rec
            if not rec.event_bytes:
                rec.event_bytes = len(payload)
            t0 = rec.sent_at.get(seq)
            if t0 is not None:
                rec.latencies.append(now - t0)
                rec.deliveries += 1
                rec.last_delivery = now
            if rec.keep_history:
                self.h_seq.append(seq)
                self.h_eid.append(eid)
                self.h_time.append(now)
            return
        msg = orjson.loads(payload)
        kind = msg.get("type")
        if kind == "welcome":
            self.welcome_at = now
            self.welcome_count += 1
            latest = msg["payload"].get("latest_event_id") or 0
            # on a resumed connection keep our own position (the replay comes next)
            if self.welcome_count == 1 or self.latest_event_id == 0:
                self.latest_event_id = max(self.latest_event_id, latest)
            if self.welcome is not None and not self.welcome.done():
                self.welcome.set_result(msg["payload"])
            return
        key = str(kind)
        if kind == "error":
            key = f"error:{msg['payload'].get('code')}"
        self.other_messages[key] = self.other_messages.get(key, 0) + 1

    # -- connecting
    async def connect(
        self, host: str, port: int, path: str, wait_s: float = 30.0
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        self.buf = bytearray()
        self.upgraded = False
        self.close_code = 0
        self.welcome = loop.create_future()
        self.closed = loop.create_future()
        transport, _ = await loop.create_connection(lambda: self, host, port)
        self.transport = transport  # uvloop calls connection_made a turn later
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {_KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            + (f"Sec-WebSocket-Extensions: {self.offer}\r\n" if self.offer else "")
            + "\r\n"
        )
        self.transport.write(request.encode())
        try:
            async with asyncio.timeout(wait_s):
                return await self.welcome
        except BaseException:
            self.transport.abort()
            raise

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._send_frame(0x8, struct.pack("!H", 1000))
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect_all(
    clients: Sequence[WSClient],
    port: int,
    paths: Sequence[str],
    *,
    concurrency: int = 200,
    retries: int = 3,
) -> tuple[float, dict[str, int]]:
    """Open every client (at most `concurrency` handshakes in flight); seconds taken, errors."""
    sem = asyncio.Semaphore(concurrency)
    errors: dict[str, int] = {}

    async def one(client: WSClient, path: str) -> None:
        for attempt in range(retries + 1):
            async with sem:
                try:
                    await client.connect("127.0.0.1", port, path)
                    return
                except (OSError, ConnectionError, TimeoutError) as exc:
                    key = f"{type(exc).__name__}: {exc}"[:80]
                    errors[key] = errors.get(key, 0) + 1
            if attempt < retries:
                await asyncio.sleep(0.2 + random.random() * 0.3)  # noqa: S311

    t0 = time.monotonic()
    await asyncio.gather(*(one(c, p) for c, p in zip(clients, paths, strict=True)))
    return time.monotonic() - t0, errors


async def close_all(clients: Iterable[WSClient]) -> None:
    for c in clients:
        c.on_close = None
        c.close()
    await asyncio.sleep(0.5)
    for c in clients:
        c.abort()


# ---- the event driver -----------------------------------------------------------------------


class HTTPError(Exception):
    """A request that got no HTTP answer (connection refused, reset, timeout)."""


class HTTPPool:
    """A lean HTTP/1.1 keep-alive client for JSON POSTs: a connection per request in flight.

    httpx's pool costs the client core about as much CPU as a request costs the server and
    queued requests behind its locks for hundreds of ms at 8+ in flight, which showed up as
    server latency; this does one write and one read per request.
    """

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.set_base_url(base_url)

    def set_base_url(self, url: str) -> None:
        host_port = url.split("://", 1)[1].rstrip("/")
        host, _, port = host_port.partition(":")
        self.host, self.port = host, int(port or 80)
        self.close_idle()

    def close_idle(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle = []

    async def post(self, path: str, body: Any) -> tuple[int, bytes]:
        data = orjson.dumps(body)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        try:
            async with asyncio.timeout(self.timeout):
                while self._idle:
                    # A kept-alive connection the server closed meanwhile (uvicorn closes
                    # idle ones after 5 s) fails before any answer: the request never ran.
                    reader, writer = self._idle.pop()
                    try:
                        return await self._exchange(reader, writer, head + data)
                    except (asyncio.IncompleteReadError, ConnectionError) as exc:
                        if getattr(exc, "partial", b""):
                            raise
                reader, writer = await asyncio.open_connection(self.host, self.port)
                return await self._exchange(reader, writer, head + data)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            raise HTTPError(type(exc).__name__) from exc

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> tuple[int, bytes]:
        try:
            writer.write(request)
            status_line_and_headers = await reader.readuntil(b"\r\n\r\n")
            status = int(status_line_and_headers[9:12])
            length = 0
            for line in status_line_and_headers.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            payload = await reader.readexactly(length) if length else b""
        except BaseException:
            writer.close()
            raise
        self._idle.append((reader, writer))
        return status, payload

    async def aclose(self) -> None:
        self.close_idle()


class Driver:
    """Commits events: `POST /api/v1/bugs` on bugstream, `POST /publish` on the baseline.

    Every event is a bug titled `bench <seq>`; `rec.sent_at[seq]` is the time just before its
    request was issued, which the clients subtract from their arrival time.
    """

    def __init__(
        self,
        base_url: str,
        *,
        baseline: bool,
        token: str,
        project_id: int,
        rec: Recorder,
        description: str = "",
    ) -> None:
        self.baseline = baseline
        self.description = description
        self.project_id = project_id
        self.rec = rec
        self.http = HTTPPool(base_url, {"Authorization": f"Bearer {token}"})
        self.seq = 0
        self.ok: list[int] = []
        self.failed: dict[str, int] = {}
        self.done_at: dict[int, float] = {}

    def set_base_url(self, url: str) -> None:
        self.http.set_base_url(url)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def one(self) -> None:
        self.seq += 1
        seq = self.seq
        body = {
            "project_id": self.project_id,
            "title": f"{TITLE_PREFIX}{seq}",
            "description": self.description,
        }
        path = "/publish" if self.baseline else "/api/v1/bugs"
        self.rec.sent_at[seq] = time.monotonic()
        try:
            status, _ = await self.http.post(path, body)
        except HTTPError as exc:
            key = str(exc)
            self.failed[key] = self.failed.get(key, 0) + 1
            return
        if status in (200, 201):
            self.ok.append(seq)
            self.done_at[seq] = time.monotonic()
        else:
            key = f"http {status}"
            self.failed[key] = self.failed.get(key, 0) + 1

    async def steady(self, rate: float, seconds: float, stop: asyncio.Event | None = None) -> int:
        """Open loop: one request every 1/rate s, whatever the previous one is doing."""
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        count = int(rate * seconds)
        for i in range(count):
            if stop is not None and stop.is_set():
                break
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one()))
        await asyncio.gather(*tasks)
        return len(tasks)

    async def burst(self, count: int, concurrency: int = 8) -> int:
        """`count` requests as fast as the server answers, `concurrency` in flight."""
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await self.one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count


# ---- statistics and output ------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def latency_summary(values: Iterable[float]) -> dict[str, float]:
    data = sorted(values)
    return {
        "p50_ms": percentile(data, 50) * 1000,
        "p99_ms": percentile(data, 99) * 1000,
        "max_ms": (data[-1] * 1000) if data else float("nan"),
    }


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) + " |")


def write_json(path: str | None, data: Any) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"\nwrote {path}")


def cpu_model() -> str:
    """The CPU's model name: results from two machines of the same size differ by it."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def environment() -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "loadavg_at_start": loadavg(),
    }


async def wait_until(cond: Callable[[], bool], wait_s: float, step: float = 0.01) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(step)
    return cond()


def begin_run(prefix: str) -> tuple[Path, dict[str, Any]]:
    """Every run's start: enough file descriptors, a work dir, the environment (printed)."""
    raise_nofile()
    workdir = make_workdir(prefix)
    env = environment()
    print(f"workdir {workdir}; {env['cpu_model']}; load average {env['loadavg_at_start']}")
    return workdir, env


def add_run_options(
    parser: argparse.ArgumentParser,
    servers: Sequence[str] = ("bugstream", "baseline", "node"),
    default: Sequence[str] = ("bugstream", "baseline"),
) -> None:
    """The options every benchmark takes: which servers, keep the work dir, JSON output."""
    parser.add_argument(
        "--servers",
        nargs="+",
        default=list(default),
        choices=list(servers),
        help="baseline: FastAPI send_text loop; node: Node's ws broadcast",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (server logs)")
    parser.add_argument("--json", help="write the results here")


def run_benchmark(
    parser: argparse.ArgumentParser,
    main_async: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
    report: Callable[[dict[str, Any]], None],
) -> None:
    """Parse the options, run, print the tables, write the JSON."""
    args = parser.parse_args()
    # uvloop: the clients' reads cost less, so the one client core keeps up longer.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        data = runner.run(main_async(args))
    report(data)
    write_json(args.json, data)


def raise_nofile() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Users:
    """Which user each client connects as: `per_user` clients per seeded user."""

    seed: Seed
    per_user: int
    tokens: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tokens = [token(uid, "developer") for uid in self.seed.user_ids]

    def token_of(self, client_index: int) -> str:
        return self.tokens[client_index // self.per_user]

    def admin_token(self) -> str:
        return token(self.seed.admin_id, "admin")
