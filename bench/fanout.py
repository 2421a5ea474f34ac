"""Fan-out: N connected clients, events committed through the service at a steady rate and in
bursts; delivered messages/s, server CPU time per delivered message, delivery latency.

    uv run python bench/fanout.py --clients 1000
    uv run python bench/fanout.py --clients 5000 --json fanout-5000.json

The same run measures bugstream (`bugstream serve`, SQLite + in-memory bus by default, events
committed with `POST /api/v1/bugs`) and the FastAPI baseline (`bench/baseline_server.py`,
`POST /publish`), with the same clients, the same N and the same event schedule.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import Any

from common import (
    Driver,
    Recorder,
    ServerProcess,
    Users,
    WSClient,
    add_run_options,
    baseline_server,
    begin_run,
    bugstream_server,
    close_all,
    connect_all,
    create_postgres_db,
    flush_redis,
    free_port,
    latency_summary,
    print_table,
    run_benchmark,
    seed,
    wait_until,
)


def client_cpu() -> float:
    t = os.times()
    return t.user + t.system


async def run_phase(
    name: str,
    server: ServerProcess,
    driver: Driver,
    rec: Recorder,
    clients: list[WSClient],
    action: Any,
    drain_timeout: float,
) -> dict[str, Any]:
    rec.reset(name)
    ok_before = len(driver.ok)
    failed_before = sum(driver.failed.values())
    cpu0, ccpu0 = server.cpu(), client_cpu()
    t0 = time.monotonic()
    await action()
    sent_done = time.monotonic()
    committed = len(driver.ok) - ok_before
    expected = committed * len(clients)
    complete = await wait_until(lambda: rec.deliveries >= expected, drain_timeout)
    cpu1, ccpu1 = server.cpu(), client_cpu()
    end = rec.last_delivery if rec.deliveries else time.monotonic()
    elapsed = max(end - t0, 1e-9)
    server_cpu = cpu1 - cpu0
    row: dict[str, Any] = {
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
        "client_cpu_util": (ccpu1 - ccpu0) / elapsed,
        **latency_summary(rec.latencies),
    }
    return row


async def run_target(
    kind: str,
    args: argparse.Namespace,
    users: Users,
    db_url: str,
    bus_url: str | None,
    workdir: Any,
) -> dict[str, Any]:
    n = args.clients
    port = free_port()
    if kind == "bugstream":
        server = bugstream_server(
            "bugstream",
            workdir,
            port,
            database_url=db_url,
            bus_url=bus_url,
            per_user_limit=max(3, args.per_user),
            max_connections=max(10_000, n + 100),
        )
    else:
        server = baseline_server("baseline", workdir, port)
    rec = Recorder()
    clients = [WSClient(i, rec) for i in range(n)]
    driver = Driver(
        server.http_url,
        baseline=kind == "baseline",
        token=users.admin_token(),
        project_id=users.seed.project_id,
        rec=rec,
    )
    result: dict[str, Any] = {"server": kind, "clients": n}
    await server.start()
    try:
        rss0 = server.rss()
        paths = [f"/ws?token={users.token_of(i)}" for i in range(n)]
        connect_s, errors = await connect_all(clients, port, paths)
        connected = sum(1 for c in clients if c.welcome_count)
        result.update(connected=connected, connect_s=connect_s, connect_errors=errors)
        result["rss_idle_mib"] = server.rss() / 2**20
        result["rss_per_conn_kib"] = (server.rss() - rss0) / max(connected, 1) / 1024
        live = [c for c in clients if c.welcome_count]
        # warm-up, not measured
        await run_phase("warmup", server, driver, rec, live, lambda: driver.burst(5, 1), 30)

        def steady(rate: float) -> Callable[[], Awaitable[int]]:
            return lambda: driver.steady(rate, args.seconds)

        phases: list[tuple[str, Callable[[], Awaitable[int]]]] = [
            (f"steady {rate:g}/s x {args.seconds:g}s", steady(rate)) for rate in args.rate
        ]
        phases.append(
            (f"burst {args.burst}", lambda: driver.burst(args.burst, args.burst_concurrency))
        )
        rows = []
        for name, action in phases:
            await asyncio.sleep(1.0)
            rows.append(
                await run_phase(name, server, driver, rec, live, action, args.drain_timeout)
            )
        result["phases"] = rows
        total = len(driver.ok)
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


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir, env = begin_run("fanout")
    n_users = math.ceil(args.clients / args.per_user)
    bus_url: str | None = None
    if args.postgres:
        db_url = await create_postgres_db("bench_fanout")
        bus_url = await flush_redis(args.redis_db)
    else:
        db_url = f"sqlite+aiosqlite:///{workdir / 'bugstream.db'}"
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
        "elapsed_s",
        "msgs_per_s",
        "cpu_us_per_msg",
        "server_cpu_util",
        "client_cpu_util",
        "p50_ms",
        "p99_ms",
        "max_ms",
    ]
    print_table("Fan-out", rows, columns)
    by = {(r["server"], r["phase"]): r for r in rows}
    ratios = []
    for (server, phase), r in by.items():
        base = by.get(("baseline", phase))
        if server != "bugstream" or base is None:
            continue
        ratios.append(
            {
                "phase": phase,
                "msgs_per_s x": r["msgs_per_s"] / base["msgs_per_s"],
                "cpu_per_msg x": r["cpu_us_per_msg"] / base["cpu_us_per_msg"],
                "p50 x": r["p50_ms"] / base["p50_ms"],
                "p99 x": r["p99_ms"] / base["p99_ms"],
                "max x": r["max_ms"] / base["max_ms"],
            }
        )
    if ratios:
        print_table("bugstream / baseline", ratios, list(ratios[0]))
    info = [
        {
            "server": r["server"],
            "connected": r["connected"],
            "connect_s": r["connect_s"],
            "rss_idle_mib": r["rss_idle_mib"],
            "clients_missing_events": r["clients_missing_events"],
            "out_of_order": r["out_of_order"],
            "closed_during_run": r["closed_during_run"] or "",
            "connect_errors": r["connect_errors"] or "",
            "other_messages": r["other_messages"] or "",
        }
        for r in data["results"]
    ]
    print_table("Connections", info, list(info[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=5, help="connections per seeded user")
    parser.add_argument(
        "--rate", type=float, nargs="+", default=[5.0, 20.0], help="steady phases: events/s"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="steady phase length")
    parser.add_argument("--burst", type=int, default=200, help="events in the burst")
    parser.add_argument("--burst-concurrency", type=int, default=8)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis bus")
    parser.add_argument("--redis-db", type=int, default=13)
    add_run_options(parser)
    run_benchmark(parser, main_async, report)


if __name__ == "__main__":
    main()
