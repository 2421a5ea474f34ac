"""Fan-out: N connected clients, events committed with real REST writes at a paced rate and in a
burst; server CPU per delivery, frames per write, latency from request to receipt.

    uv run python bench/fanout.py                       # 1,000 clients: paced 50/s, burst 100
    uv run python bench/fanout.py --clients 5000 --rate 10 --burst 0
    uv run python bench/fanout.py --servers bugstream --profile profile-burst

One run measures each server in turn with the same clients, N, event size and schedule:
bugstream (`bugstream serve` on the embedded defaults, SQLite + in-memory bus, every event a
`POST /api/v1/bugs`), the FastAPI `send_text` loop (`bench/baseline_server.py`) and Node's
`ws` broadcast (`bench/node_ws/server.mjs`), both fed by `POST /publish`. The server runs on
one core (`taskset -c 0`), this process (clients and driver) on the other; server CPU is
utime + stime of the server's whole process tree from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from common import (
    Driver,
    Recorder,
    ServerProcess,
    Users,
    WSClient,
    add_run_options,
    baseline_kind_server,
    begin_run,
    bugstream_server,
    close_all,
    connect_all,
    create_postgres_db,
    flush_redis,
    free_port,
    latency_summary,
    pin_self,
    print_table,
    run_benchmark,
    seed,
    wait_until,
)

#: Requests made before the clients connect, to learn how many write calls a request costs.
CALIBRATION_REQUESTS = 200


def client_cpu() -> float:
    t = os.times()
    return t.user + t.system


async def bugstream_metrics(server: ServerProcess) -> dict[str, float]:
    """The server's own counters of writes and frames (bugstream only)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        text = (await http.get(server.http_url + "/metrics")).text
    wanted = ("bugstream_ws_socket_writes_total", "bugstream_ws_frames_written_total")
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            values[name] = float(value)
    return values


#: Extra py-spy options (`--native` shows C frames too); set by --profile-native.
NATIVE: list[str] = []


class Profiler:
    """py-spy on the server during one phase; self time per function, from its raw output."""

    def __init__(self, pid: int, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(  # noqa: S603
            [
                *(
                    "py-spy",
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    *NATIVE,
                ),
                *("--nonblocking", "--output", str(path)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def stop(self) -> list[tuple[str, float]]:
        self.proc.send_signal(signal.SIGINT)
        await asyncio.to_thread(self.proc.wait)
        own: Counter[str] = Counter()
        total = 0
        for line in self.path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            own[stack.split(";")[-1]] += n
        return [(frame, n / max(total, 1) * 100) for frame, n in own.most_common(25)]


async def run_phase(
    name: str,
    server: ServerProcess,
    driver: Driver,
    rec: Recorder,
    clients: list[WSClient],
    action: Callable[[], Awaitable[int]],
    drain_timeout: float,
    writes_per_request: float,
) -> dict[str, Any]:
    rec.reset(name)
    ok_before = len(driver.ok)
    failed_before = sum(driver.failed.values())
    (u0, s0), ccpu0, w0 = server.cpu_split(), client_cpu(), server.write_calls()
    t0 = time.monotonic()
    await action()
    sent_done = time.monotonic()
    committed = len(driver.ok) - ok_before
    requests = committed + sum(driver.failed.values()) - failed_before
    expected = committed * len(clients)
    complete = await wait_until(lambda: rec.deliveries >= expected, drain_timeout)
    (u1, s1), ccpu1, w1 = server.cpu_split(), client_cpu(), server.write_calls()
    end = rec.last_delivery if rec.deliveries else time.monotonic()
    elapsed = max(end - t0, 1e-9)
    server_cpu = (u1 - u0) + (s1 - s0)
    data_writes = max(1.0, (w1 - w0) - writes_per_request * requests)
    return {
        "phase": name,
        "events": committed,
        "failed_requests": sum(driver.failed.values()) - failed_before,
        "deliveries": rec.deliveries,
        "expected": expected,
        "missing": expected - rec.deliveries,
        "complete": complete,
        "send_s": sent_done - t0,
        "elapsed_s": elapsed,
        "msgs_per_s": rec.deliveries / elapsed,
        "server_cpu_s": server_cpu,
        "server_cpu_util": server_cpu / elapsed,
        "cpu_us_per_msg": server_cpu / max(rec.deliveries, 1) * 1e6,
        "user_us_per_msg": (u1 - u0) / max(rec.deliveries, 1) * 1e6,
        "sys_us_per_msg": (s1 - s0) / max(rec.deliveries, 1) * 1e6,
        "write_calls": w1 - w0,
        "frames_per_write": rec.deliveries / data_writes,
        "client_cpu_util": (ccpu1 - ccpu0) / elapsed,
        **latency_summary(rec.latencies),
    }


async def calibrate(server: ServerProcess, driver: Driver) -> dict[str, float]:
    """Write calls and CPU per request with no client connected (also warms the server up)."""
    await driver.burst(10, 1)
    cpu0, w0 = server.cpu(), server.write_calls()
    await driver.burst(CALIBRATION_REQUESTS, 1)
    await asyncio.sleep(0.3)  # the relay and whatever follows a commit
    return {
        "writes_per_request": (server.write_calls() - w0) / CALIBRATION_REQUESTS,
        "cpu_ms_per_request": (server.cpu() - cpu0) / CALIBRATION_REQUESTS * 1000,
    }


def make_server(
    kind: str, args: argparse.Namespace, db_url: str, bus_url: str | None, workdir: Path
) -> ServerProcess:
    port = free_port()
    if kind == "bugstream":
        server = bugstream_server(
            "bugstream",
            workdir,
            port,
            database_url=db_url,
            bus_url=bus_url,
            per_user_limit=max(3, args.per_user),
            max_connections=max(10_000, args.clients + 100),
            extra={"BUGSTREAM_WS_MAX_PENDING_HANDSHAKES": str(args.connect_concurrency)},
        )
    else:
        server = baseline_kind_server(kind, kind, workdir, port)
    server.core = args.server_core
    return server


async def run_target(
    kind: str,
    args: argparse.Namespace,
    users: Users,
    db_url: str,
    bus_url: str | None,
    workdir: Path,
) -> dict[str, Any]:
    n = args.clients
    server = make_server(kind, args, db_url, bus_url, workdir)
    rec = Recorder()
    clients = [WSClient(i, rec) for i in range(n)]
    driver = Driver(
        server.http_url,
        baseline=kind != "bugstream",
        token=users.admin_token(),
        project_id=users.seed.project_id,
        rec=rec,
        description="d" * args.description_bytes,
    )
    result: dict[str, Any] = {"server": kind, "clients": n}
    await server.start()
    try:
        result.update(await calibrate(server, driver))
        calibration_events = len(driver.ok)
        await asyncio.sleep(1.0)
        rss0 = server.rss()
        cpu0 = server.cpu()
        paths = [f"/ws?token={users.token_of(i)}" for i in range(n)]
        connect_profiler = None
        if args.profile and kind == "bugstream":
            connect_profiler = Profiler(server.pid, Path(f"{args.profile}-connect.txt"))
            await asyncio.sleep(0.5)
        connect_s, errors = await connect_all(
            clients, server.port, paths, concurrency=args.connect_concurrency
        )
        if connect_profiler is not None:
            result.setdefault("profiles", {})["connect"] = await connect_profiler.stop()
        connected = sum(1 for c in clients if c.welcome_count)
        result.update(
            connected=connected,
            connect_s=connect_s,
            connect_errors=errors,
            handshake_cpu_ms=(server.cpu() - cpu0) / max(connected, 1) * 1000,
        )
        await asyncio.sleep(2.0)
        result["rss_idle_mib"] = server.rss() / 2**20
        result["rss_per_conn_kib"] = (server.rss() - rss0) / max(connected, 1) / 1024
        live = [c for c in clients if c.welcome_count]
        wpr = result["writes_per_request"]
        await run_phase("warmup", server, driver, rec, live, lambda: driver.burst(5, 1), 30, wpr)

        phases: list[tuple[str, Callable[[], Awaitable[int]]]] = []
        for rate in args.rate:
            phases.append(
                (f"paced {rate:g}/s x {args.seconds:g}s", paced(driver, rate, args.seconds))
            )
        if args.burst:
            phases.append(
                (f"burst {args.burst}", lambda: driver.burst(args.burst, args.burst_concurrency))
            )
        rows = []
        metrics_before = await bugstream_metrics(server) if kind == "bugstream" else {}
        for name, action in phases:
            await asyncio.sleep(1.0)
            profiler = None
            if args.profile and kind == "bugstream":
                kind_of_phase = name.split()[0]  # paced / burst
                profiler = Profiler(server.pid, Path(f"{args.profile}-{kind_of_phase}.txt"))
                await asyncio.sleep(0.5)
            row = await run_phase(name, server, driver, rec, live, action, args.drain_timeout, wpr)
            if profiler is not None:
                result.setdefault("profiles", {})[name] = await profiler.stop()
            rows.append(row)
        if kind == "bugstream":
            after = await bugstream_metrics(server)
            writes = after.get("bugstream_ws_socket_writes_total", 0) - metrics_before.get(
                "bugstream_ws_socket_writes_total", 0
            )
            frames = after.get("bugstream_ws_frames_written_total", 0) - metrics_before.get(
                "bugstream_ws_frames_written_total", 0
            )
            result["server_frames_per_write"] = frames / writes if writes else None
        result["phases"] = rows
        result["failed_requests"] = dict(driver.failed)
        result["event_bytes"] = rec.event_bytes
        total = len(driver.ok) - calibration_events
        result["clients_missing_events"] = sum(1 for c in live if c.events < total)
        result["out_of_order"] = sum(c.out_of_order for c in live)
        closes: dict[str, int] = {}
        for c in live:
            if c.transport is None or c.transport.is_closing():
                closes[str(c.close_code)] = closes.get(str(c.close_code), 0) + 1
        result["closed_during_run"] = closes
        other: dict[str, int] = {}
        for c in live:
            for k, v in c.other_messages.items():
                other[k] = other.get(k, 0) + v
        result["other_messages"] = other
        result["server_rss_end_mib"] = server.rss() / 2**20
    finally:
        await close_all(clients)
        await driver.aclose()
        await server.stop()
    return result


def paced(driver: Driver, rate: float, seconds: float) -> Callable[[], Awaitable[int]]:
    """A paced phase's start, bound to its own rate (a lambda in the loop would share one)."""
    return lambda: driver.steady(rate, seconds)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pin_self(args.client_core)
    workdir, env = begin_run("fanout")
    env["server_core"] = args.server_core
    env["client_core"] = args.client_core
    n_users = math.ceil(args.clients / args.per_user)
    bus_url: str | None = None
    if args.postgres:
        db_url = await create_postgres_db("bench_fanout")
        bus_url = await flush_redis(args.redis_db)
    else:
        db_url = f"sqlite:///{workdir / 'bugstream.db'}"
    t = time.monotonic()
    users = Users(await seed(db_url, workdir, n_users), args.per_user)
    print(f"seeded {n_users} users in {time.monotonic() - t:.1f} s")
    results = []
    for kind in args.servers:
        print(f"running {kind} with {args.clients} clients ...", flush=True)
        results.append(await run_target(kind, args, users, db_url, bus_url, workdir))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"benchmark": "fanout", "environment": env, "args": vars(args), "results": results}


def report(data: dict[str, Any]) -> None:
    rows = []
    for r in data["results"]:
        for p in r["phases"]:
            rows.append({"server": r["server"], "clients": r["clients"], **p})
    columns = [
        "server",
        "clients",
        "phase",
        "events",
        "deliveries",
        "missing",
        "msgs_per_s",
        "cpu_us_per_msg",
        "user_us_per_msg",
        "sys_us_per_msg",
        "frames_per_write",
        "server_cpu_util",
        "client_cpu_util",
        "p50_ms",
        "p99_ms",
        "max_ms",
    ]
    print_table("Fan-out", rows, columns)
    info = [
        {
            "server": r["server"],
            "event_bytes": r["event_bytes"],
            "cpu_ms_per_request": r["cpu_ms_per_request"],
            "writes_per_request": r["writes_per_request"],
            "connected": r["connected"],
            "connect_s": r["connect_s"],
            "handshake_cpu_ms": r["handshake_cpu_ms"],
            "rss_per_conn_kib": r["rss_per_conn_kib"],
            "server_frames_per_write": r.get("server_frames_per_write") or "",
            "failed_requests": r.get("failed_requests") or "",
            "clients_missing_events": r["clients_missing_events"],
            "out_of_order": r["out_of_order"],
            "closed_during_run": r["closed_during_run"] or "",
            "connect_errors": r["connect_errors"] or "",
            "other_messages": r["other_messages"] or "",
        }
        for r in data["results"]
    ]
    print_table("Servers", info, list(info[0]))
    for r in data["results"]:
        for phase, profile in r.get("profiles", {}).items():
            print_table(
                f"Profile of {r['server']}, {phase} (py-spy, % of samples, own time)",
                [{"frame": f, "%": pct} for f, pct in profile],
                ["frame", "%"],
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=5, help="connections per seeded user")
    parser.add_argument(
        "--rate", type=float, nargs="*", default=[50.0], help="paced phases: events/s"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="paced phase length")
    parser.add_argument("--burst", type=int, default=100, help="events in the burst (0: none)")
    parser.add_argument("--burst-concurrency", type=int, default=8)
    parser.add_argument(
        "--description-bytes",
        type=int,
        default=200,
        help="bug description length (the event is ~250 B more)",
    )
    parser.add_argument("--connect-concurrency", type=int, default=256)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--server-core", type=int, default=0, help="taskset core of the server")
    parser.add_argument("--client-core", type=int, default=1, help="core of this process")
    parser.add_argument(
        "--profile",
        help="py-spy bugstream while clients connect and in each phase; raw stacks to "
        "FILE-connect.txt, FILE-paced.txt, ...",
    )
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis bus")
    parser.add_argument("--redis-db", type=int, default=13)
    add_run_options(parser, default=("bugstream", "baseline", "node"))
    run_benchmark(parser, main_async, report)


if __name__ == "__main__":
    main()
