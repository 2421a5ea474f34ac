"""Writes: what one `POST /api/v1/bugs` costs the server, how many it sustains, and its latency.

    uv run python bench/writes.py                        # embedded defaults (SQLite)
    uv run python bench/writes.py --postgres --instances 2 --writers 16

No WebSocket client is connected: this is the cost of an event's birth (authenticated REST
write, its outbox row, the relay). Phases:
- `saturate`: `--writers` requests in flight for `--seconds`: committed writes/s and server CPU
  per write (the embedded server is pinned to one core, so writes/s is what one core does);
- `paced`: `--rate` writes/s, open loop, for `--seconds`: POST latency p50/p99/max.

With `--postgres`, `--instances` servers share one PostgreSQL database and one Redis bus (the
cluster case); the writers are spread over them, and every event id is checked afterwards:
one gap-free, increasing sequence on the bus, each event once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import time
from pathlib import Path
from typing import Any, cast

from common import (
    HTTPError,
    HTTPPool,
    ServerProcess,
    Users,
    add_run_options,
    begin_run,
    bugstream_server,
    cpu_seconds,
    create_postgres_db,
    flush_redis,
    free_port,
    latency_summary,
    pin_self,
    print_table,
    run_benchmark,
    seed,
)
from fanout import Profiler


def services_cpu() -> float:
    """CPU seconds of every PostgreSQL and Redis process on the machine (/proc)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name.startswith(("postgres", "redis-server")):
            with contextlib.suppress(OSError):
                total += cpu_seconds(int(entry))
    return total


def client_cpu() -> float:
    t = os.times()
    return t.user + t.system


class Writers:
    """POSTs bug reports over keep-alive connections, round-robin over the servers."""

    def __init__(self, servers: list[ServerProcess], token: str, project_id: int) -> None:
        self.project_id = project_id
        self.clients = [HTTPPool(s.http_url, {"Authorization": f"Bearer {token}"}) for s in servers]
        self._next = itertools.cycle(self.clients)
        self.seq = 0
        self.latencies: list[float] = []
        self.failed: dict[str, int] = {}
        self.ok = 0

    async def one(self) -> None:
        self.seq += 1
        body = {"project_id": self.project_id, "title": f"w{self.seq}", "description": "d" * 200}
        client = next(self._next)
        t0 = time.monotonic()
        try:
            status, _ = await client.post("/api/v1/bugs", body)
        except HTTPError as exc:
            self.failed[str(exc)] = self.failed.get(str(exc), 0) + 1
            return
        if status == 201:
            self.ok += 1
            self.latencies.append(time.monotonic() - t0)
        else:
            key = f"http {status}"
            self.failed[key] = self.failed.get(key, 0) + 1

    async def saturate(self, writers: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds

        async def writer() -> None:
            while time.monotonic() < deadline:
                await self.one()

        await asyncio.gather(*(writer() for _ in range(writers)))

    async def paced(self, rate: float, seconds: float) -> None:
        tasks = []
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one()))
        await asyncio.gather(*tasks)

    def reset(self) -> None:
        self.latencies = []
        self.failed = {}
        self.ok = 0

    async def aclose(self) -> None:
        for c in self.clients:
            await c.aclose()


async def phase(
    name: str, servers: list[ServerProcess], writers: Writers, action: Any, profile: str | None
) -> dict[str, Any]:
    writers.reset()
    profiler = Profiler(servers[0].pid, Path(f"{profile}.txt")) if profile else None
    if profiler is not None:
        await asyncio.sleep(0.5)
    cpu0 = [s.cpu() for s in servers]
    db0, client0 = services_cpu(), client_cpu()
    t0 = time.monotonic()
    await action()
    elapsed = time.monotonic() - t0
    cpu = sum(s.cpu() - c for s, c in zip(servers, cpu0, strict=True))
    db_cpu, own_cpu = services_cpu() - db0, client_cpu() - client0
    row: dict[str, Any] = {
        "phase": name,
        "committed": writers.ok,
        "failed": sum(writers.failed.values()),
        "writes_per_s": writers.ok / elapsed,
        "server_cpu_ms_per_write": cpu / max(writers.ok, 1) * 1000,
        "server_cpu_util": cpu / elapsed,
        # Where the rest of the machine went: PostgreSQL and Redis, and this load client.
        "db_bus_cpu_ms_per_write": db_cpu / max(writers.ok, 1) * 1000,
        "client_cpu_ms_per_write": own_cpu / max(writers.ok, 1) * 1000,
        **latency_summary(writers.latencies),
    }
    if profiler is not None:
        row["profile"] = await profiler.stop()
    return row


async def bus_ids(redis_url: str) -> list[int]:
    """Every event id in the Redis log, in log order."""
    import redis.asyncio as redis

    stream_key = "bugstream:events"  # bus/redis.py: `<prefix>:events`, default prefix

    client = redis.Redis.from_url(redis_url)
    try:
        ids: list[int] = []
        last = "-"
        while True:
            # redis-py types entries for every client setting; ours returns bytes ids.
            raw = await client.xrange(stream_key, min=last, count=5000)
            chunk = cast(list[tuple[bytes, Any]], raw or [])
            if last != "-":
                chunk = chunk[1:]
            if not chunk:
                return ids
            for entry_id, _fields in chunk:
                ids.append(int(entry_id.decode().split("-")[0]))
            last = chunk[-1][0].decode()
    finally:
        await client.aclose()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pin_self(args.client_core)
    workdir, env = begin_run("writes")
    bus_url: str | None = None
    if args.postgres:
        db_url = await create_postgres_db("bench_writes")
        bus_url = await flush_redis(args.redis_db)
    else:
        db_url = f"sqlite:///{workdir / 'bugstream.db'}"
    users = Users(await seed(db_url, workdir, 1), 1)
    servers = []
    for i in range(args.instances):
        server = bugstream_server(
            f"bugstream-{i}", workdir, free_port(), database_url=db_url, bus_url=bus_url
        )
        if args.instances == 1:
            server.core = args.server_core
        servers.append(server)
    rows = []
    try:
        await asyncio.gather(*(s.start() for s in servers))
        writers = Writers(servers, users.admin_token(), users.seed.project_id)
        try:
            await writers.saturate(4, 1.0)  # warm-up
            await asyncio.sleep(0.5)
            rows.append(
                await phase(
                    f"saturate, {args.writers} writers",
                    servers,
                    writers,
                    lambda: writers.saturate(args.writers, args.seconds),
                    f"{args.profile}-saturate" if args.profile else None,
                )
            )
            await asyncio.sleep(1.0)
            for rate in args.rate:
                rows.append(
                    await phase(
                        f"paced {rate:g}/s",
                        servers,
                        writers,
                        lambda rate=rate: writers.paced(rate, args.seconds),
                        f"{args.profile}-paced-{rate:g}" if args.profile else None,
                    )
                )
                await asyncio.sleep(1.0)
        finally:
            await writers.aclose()
        result: dict[str, Any] = {"phases": rows}
        if bus_url is not None:
            await asyncio.sleep(2.0)  # the relays' last passes
            ids = await bus_ids(bus_url)
            result["bus_events"] = len(ids)
            result["bus_ids_increasing"] = all(a < b for a, b in itertools.pairwise(ids))
            result["bus_ids_unique"] = len(set(ids)) == len(ids)
    finally:
        for s in servers:
            with contextlib.suppress(Exception):
                await s.stop()
    return {
        "benchmark": "writes",
        "environment": env,
        "args": vars(args),
        "database": "postgresql" if args.postgres else "sqlite",
        **result,
    }


def report(data: dict[str, Any]) -> None:
    rows = data["phases"]
    columns = [
        "phase",
        "committed",
        "failed",
        "writes_per_s",
        "server_cpu_ms_per_write",
        "server_cpu_util",
        "db_bus_cpu_ms_per_write",
        "client_cpu_ms_per_write",
        "p50_ms",
        "p99_ms",
        "max_ms",
    ]
    title = f"Writes ({data['database']}, {data['args']['instances']} instance(s))"
    print_table(title, rows, columns)
    if "bus_events" in data:
        print(
            f"\nbus: {data['bus_events']} events, ids increasing: {data['bus_ids_increasing']}, "
            f"unique: {data['bus_ids_unique']}"
        )
    for r in rows:
        if r.get("profile"):
            print_table(
                f"Profile of the first server, {r['phase']} (py-spy, % of samples, own time)",
                [{"frame": f, "%": pct} for f, pct in r["profile"]],
                ["frame", "%"],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=8, help="requests in flight (saturate)")
    parser.add_argument("--rate", type=float, nargs="*", default=[200.0], help="paced writes/s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--server-core", type=int, default=0, help="taskset core (1 instance)")
    parser.add_argument("--client-core", type=int, default=1, help="core of this process")
    parser.add_argument("--profile", help="py-spy the first server in each phase: FILE-*.txt")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis bus")
    parser.add_argument("--redis-db", type=int, default=13)
    add_run_options(parser, servers=("bugstream",), default=("bugstream",))
    run_benchmark(parser, main_async, report)


if __name__ == "__main__":
    main()
