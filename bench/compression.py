"""permessage-deflate on and off, in one run: bytes on the wire and server CPU per delivery.

    uv run python bench/compression.py                  # 500 clients, 1.5 KB descriptions
    uv run python bench/compression.py --clients 1000 --description-bytes 400

bugstream is started twice on the same seeded database, once with BUGSTREAM_WS_COMPRESSION on
and once off; the same clients (all offering `permessage-deflate`, as browsers do) get the same
schedule of `bug_report.created` events: a paced phase, then a burst. Every event carries a
description of English-like text (a fixed seed: the same text in both runs), which compresses
about as bug reports do, unlike repeated characters. Bytes on the wire are what the clients
read from their sockets (WebSocket frames with their headers, the TCP/IP headers left out);
server CPU is utime + stime of the server's process tree, on its own core as in fanout.py.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import shutil
import timeit
from pathlib import Path
from typing import Any

import orjson
from common import (
    Driver,
    Recorder,
    Users,
    WSClient,
    begin_run,
    bugstream_server,
    close_all,
    connect_all,
    free_port,
    pin_self,
    print_table,
    run_benchmark,
    seed,
)
from fanout import Profiler, calibrate, run_phase

from bugstream.gateway.compression import deflate_message

OFFER = "permessage-deflate; client_max_window_bits"

WORDS = str.split(
    "the board card column drag drop freezes when after before user clicks save button page "
    "reload error console shows undefined null request response server returns status code "
    "timeout slow list filter sort project member role admin developer report comment "
    "attachment upload image file size limit exceeded expected actual steps to reproduce open "
    "close edit delete move assign priority high low medium release build version browser "
    "chrome firefox safari mobile desktop screen layout broken overlap text field input value "
    "empty missing wrong date time zone export import csv json api endpoint token expired login "
    "logout session cookie cache stale refresh again works sometimes always never intermittent "
    "crash stack trace line function module update notification email sent twice duplicate"
)


def description(size: int) -> str:
    """English-like text of about `size` characters, the same for a given size."""
    rng = random.Random(size)  # noqa: S311
    sentences: list[str] = []
    length = 0
    while length < size:
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
        sentence = " ".join(words).capitalize() + f" (#{rng.randint(1, 9999)})."
        sentences.append(sentence)
        length += len(sentence) + 1
    return " ".join(sentences)[:size].strip()


async def run_mode(
    compression: bool, args: argparse.Namespace, users: Users, db_url: str, workdir: Any
) -> dict[str, Any]:
    name = "compression on" if compression else "compression off"
    server = bugstream_server(
        "on" if compression else "off",
        workdir,
        free_port(),
        database_url=db_url,
        per_user_limit=args.per_user,
        extra={"BUGSTREAM_WS_COMPRESSION": "true" if compression else "false"},
    )
    server.core = args.server_core
    rec = Recorder()
    clients = [WSClient(i, rec, offer=OFFER) for i in range(args.clients)]
    driver = Driver(
        server.http_url,
        baseline=False,
        token=users.admin_token(),
        project_id=users.seed.project_id,
        rec=rec,
        description=description(args.description_bytes),
    )
    rows: list[dict[str, Any]] = []
    await server.start()
    try:
        wpr = (await calibrate(server, driver))["writes_per_request"]
        paths = [f"/ws?token={users.token_of(i)}" for i in range(args.clients)]
        _, errors = await connect_all(clients, server.port, paths)
        live = [c for c in clients if c.welcome_count]
        await run_phase("warmup", server, driver, rec, live, lambda: driver.burst(5, 1), 30, wpr)
        paced = f"paced {args.rate:g}/s x {args.seconds:g}s"
        phases = [
            (paced, lambda: driver.steady(args.rate, args.seconds)),
            (f"burst {args.burst}", lambda: driver.burst(args.burst, 8)),
        ]
        for phase, action in phases:
            await asyncio.sleep(1.0)
            before = sum(c.received_bytes for c in live)
            profiler = None
            if args.profile:
                label = "on" if compression else "off"
                path = Path(f"{args.profile}-{label}-{phase.split()[0]}.txt")
                profiler = Profiler(server.pid, path)
            row = await run_phase(phase, server, driver, rec, live, action, 60, wpr)
            if profiler is not None:
                row["profile"] = await profiler.stop()
            wire = sum(c.received_bytes for c in live) - before
            row.update(
                mode=name,
                connected=len(live),
                connect_errors=sum(errors.values()),
                wire_bytes_per_msg=wire / max(row["deliveries"], 1),
            )
            rows.append(row)
    finally:
        await close_all(clients)
        await driver.aclose()
        await server.stop()
    for row in rows:
        row["event_json_bytes"] = rec.event_bytes
    return {"mode": name, "phases": rows}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    pin_self(args.client_core)
    workdir, env = begin_run("compression")
    env.update(server_core=args.server_core, client_core=args.client_core)
    db_url = f"sqlite:///{workdir / 'bugstream.db'}"
    n_users = math.ceil(args.clients / args.per_user)
    users = Users(await seed(db_url, workdir, n_users), args.per_user)
    results = []
    for compression in (True, False):
        print(f"running with compression {'on' if compression else 'off'} ...", flush=True)
        results.append(await run_mode(compression, args, users, db_url, workdir))
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "benchmark": "compression",
        "environment": env,
        "args": vars(args),
        "results": results,
        "compress_us_per_event": compress_cost(args.description_bytes),
    }


def compress_cost(size: int) -> float:
    """Microseconds the server spends compressing one such event (once, for all recipients),
    timed in this process on an envelope like the server's."""
    envelope = orjson.dumps(
        {
            "type": "bug_report",
            "event": "created",
            "payload": {
                "id": 1, "project_id": 1, "title": "bench 1", "description": description(size),
                "status": "open", "priority": "medium", "reporter_id": 2, "assignee_id": None,
                "created_at": "2026-12-03T16:00:00Z", "updated_at": "2026-12-03T16:00:00Z",
            },
            "event_id": 1,
        }
    )  # fmt: skip
    rounds = 2000
    return timeit.timeit(lambda: deflate_message(envelope), number=rounds) / rounds * 1e6


def report(data: dict[str, Any]) -> None:
    env = data["environment"]
    print(f"\n{env['date']}  cpus {env['cpus']}  load average at start {env['loadavg_at_start']}")
    print(f"compressing one event: {data['compress_us_per_event']:.1f} µs (once per event)")
    rows = [row for result in data["results"] for row in result["phases"]]
    print_table(
        "permessage-deflate: per delivery",
        rows,
        ["mode", "phase", "connected", "deliveries", "missing", "event_json_bytes",
         "wire_bytes_per_msg", "cpu_us_per_msg", "user_us_per_msg", "sys_us_per_msg",
         "frames_per_write", "p50_ms", "p99_ms"],
    )  # fmt: skip
    for row in rows:
        if "profile" in row:
            print(f"\nwhere the server's time goes, {row['mode']}, {row['phase']} (self %):")
            for frame, share in row["profile"][:12]:
                print(f"  {share:5.1f}  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--per-user", type=int, default=3, help="connections per seeded user")
    parser.add_argument("--rate", type=float, default=40.0, help="events per second, paced")
    parser.add_argument("--seconds", type=float, default=8.0, help="paced phase length")
    parser.add_argument("--burst", type=int, default=100, help="events in the burst")
    parser.add_argument("--description-bytes", type=int, default=1500)
    parser.add_argument("--server-core", type=int, default=0, help="taskset core of the server")
    parser.add_argument("--client-core", type=int, default=1, help="core of this process")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--profile", help="py-spy the server per phase (PREFIX-on-paced.txt, ...)")
    run_benchmark(parser, main_async, report)


if __name__ == "__main__":
    main()
