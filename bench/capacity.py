"""Capacity: idle authenticated connections held, and server memory per connection.

    uv run python bench/capacity.py --clients 1000 5000
    uv run python bench/capacity.py --clients 1000 5000 9000 --hold 40 --json capacity.json

For each N and each server (a fresh process each time): RSS with 0 connections, open N
authenticated WebSockets, wait for the RSS to settle, RSS with N; then hold them idle for
`--hold` seconds (past a heartbeat ping) and check they are all still open, measuring the
server's CPU while idle. Memory per connection = (RSS(N) - RSS(0)) / N.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import time
from typing import Any

from common import (
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
    free_port,
    print_table,
    run_benchmark,
    seed,
)


async def measure(
    kind: str, n: int, args: argparse.Namespace, users: Users, db_url: str, workdir: Any
) -> dict[str, Any]:
    port = free_port()
    server: ServerProcess
    if kind == "bugstream":
        server = bugstream_server(
            f"bugstream-{n}",
            workdir,
            port,
            database_url=db_url,
            per_user_limit=max(3, args.per_user),
            max_connections=max(10_000, n + 100),
        )
    else:
        server = baseline_kind_server(kind, f"{kind}-{n}", workdir, port)
    rec = Recorder()
    clients = [WSClient(i, rec) for i in range(n)]
    row: dict[str, Any] = {"server": kind, "clients": n}
    await server.start()
    try:
        # one connection opened and closed first, so lazily built state is not counted
        warm = WSClient(-1, rec)
        await connect_all([warm], port, [f"/ws?token={users.token_of(0)}"])
        await close_all([warm])
        await asyncio.sleep(args.settle)
        rss0 = server.rss()
        cpu0 = server.cpu()
        paths = [f"/ws?token={users.token_of(i)}" for i in range(n)]
        connect_s, errors = await connect_all(clients, port, paths)
        cpu1 = server.cpu()
        connected = sum(1 for c in clients if c.welcome_count)
        await asyncio.sleep(args.settle)
        rss1 = server.rss()
        cpu2 = server.cpu()
        t = time.monotonic()
        await asyncio.sleep(args.hold)
        idle_s = time.monotonic() - t
        cpu3 = server.cpu()
        still_open = sum(
            1 for c in clients if c.transport is not None and not c.transport.is_closing()
        )
        rss2 = server.rss()
        row.update(
            connected=connected,
            connect_errors=errors or "",
            connect_s=connect_s,
            handshakes_per_s=connected / connect_s,
            server_cpu_ms_per_handshake=(cpu1 - cpu0) / max(connected, 1) * 1000,
            rss0_mib=rss0 / 2**20,
            rssN_mib=rss1 / 2**20,
            kib_per_conn=(rss1 - rss0) / max(connected, 1) / 1024,
            rss_after_hold_mib=rss2 / 2**20,
            hold_s=idle_s,
            still_open=still_open,
            idle_cpu_pct=(cpu3 - cpu2) / idle_s * 100,
        )
    finally:
        await close_all(clients)
        await server.stop()
    return row


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir, env = begin_run("capacity")
    n_users = math.ceil(max(args.clients) / args.per_user)
    db_url = f"sqlite:///{workdir / 'bugstream.db'}"
    users = Users(await seed(db_url, workdir, n_users), args.per_user)
    rows = []
    for n in args.clients:
        for kind in args.servers:
            print(f"{kind}: {n} idle connections ...", flush=True)
            rows.append(await measure(kind, n, args, users, db_url, workdir))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"benchmark": "capacity", "environment": env, "args": vars(args), "results": rows}


def report(data: dict[str, Any]) -> None:
    rows = data["results"]
    print_table("Capacity", rows, list(rows[0]))
    by = {(r["server"], r["clients"]): r for r in rows}
    ratios = []
    for (server, n), r in by.items():
        base = by.get(("baseline", n))
        if server == "bugstream" and base is not None:
            ratios.append(
                {
                    "clients": n,
                    "kib_per_conn x": r["kib_per_conn"] / base["kib_per_conn"],
                    "cpu_per_handshake x": r["server_cpu_ms_per_handshake"]
                    / base["server_cpu_ms_per_handshake"],
                    "handshakes_per_s x": r["handshakes_per_s"] / base["handshakes_per_s"],
                }
            )
    if ratios:
        print_table("bugstream / baseline", ratios, list(ratios[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--per-user", type=int, default=5, help="connections per seeded user")
    parser.add_argument("--hold", type=float, default=40.0, help="idle seconds after connecting")
    parser.add_argument("--settle", type=float, default=3.0)
    add_run_options(parser)
    run_benchmark(parser, main_async, report)


if __name__ == "__main__":
    main()
