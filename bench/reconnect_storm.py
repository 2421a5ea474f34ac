"""Reconnect storm: N clients reconnecting and resuming at once after an instance restart.

    uv run python bench/reconnect_storm.py --clients 5000
    uv run python bench/reconnect_storm.py --clients 5000 --signal kill --json storm.json

bugstream runs as two instances, A and B, on one PostgreSQL database (`bench_storm`, recreated)
and one Redis bus (db 13 by default, flushed). All N clients connect to A. The driver commits
events through B (`POST /api/v1/bugs`) at a steady rate for the whole run. After `--before`
seconds A gets SIGTERM (or SIGKILL); as soon as it has exited a new A starts on the same port.
Every client, as soon as its socket drops, reconnects to A with `last_event_id` (its last
event's id), retrying on failure after min(1 s, 0.1 s * 2^attempt) with jitter, all at once.

Measured: time from the signal (and from the new A being ready) until every client has its
`welcome` and has received every event committed before that welcome; then, after the driver
stops, an audit of every client: every committed event received exactly once, in event-id
order (lost, duplicated, out of order must all be 0).

The baseline (FastAPI, one instance, no resume) gets the same: clients connected, events
published through `POST /publish` at the same rate, the same signal and restart, the same
reconnecting clients; it reports the events each client missed.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import math
import random
import shutil
import signal
import time
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
    print_table,
    run_benchmark,
    seed,
    wait_until,
)

from bugstream.client.backoff import Backoff

SDK_BACKOFF = Backoff()


class Reconnector:
    """Reconnects every client whose socket drops, to `port`, resuming from its position."""

    def __init__(
        self, port: int, users: Users, resume: bool, deadline: float, backoff: str
    ) -> None:
        self.port = port
        self.backoff = backoff
        self.users = users
        self.resume = resume
        self.deadline = deadline
        self.tasks: set[asyncio.Task[None]] = set()
        self.attempts = 0
        self.failures: dict[str, int] = {}
        self.dropped = 0
        self.drop_codes: dict[str, int] = {}

    def on_close(self, client: WSClient) -> None:
        self.dropped += 1
        code = str(client.close_code or "none (1006)")
        self.drop_codes[code] = self.drop_codes.get(code, 0) + 1
        client.on_close = None
        task = asyncio.get_running_loop().create_task(self._reconnect(client))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def path(self, client: WSClient) -> str:
        path = f"/ws?token={self.users.token_of(client.index)}"
        if self.resume:
            path += f"&last_event_id={client.latest_event_id}"
        return path

    async def _reconnect(self, client: WSClient) -> None:
        attempt = 0
        while time.monotonic() < self.deadline:
            if self.backoff == "sdk":
                # bugstream's own client: full jitter in [0, 2 * 2^(n-1)] s, capped at 60 s
                # (the SDK gives up after 5 attempts; here it goes on until the deadline)
                bound = SDK_BACKOFF.bound(attempt + 1)
            else:
                bound = 0.1 if attempt == 0 else min(1.0, 0.1 * 2**attempt)
            await asyncio.sleep(bound * random.random())  # noqa: S311
            self.attempts += 1
            try:
                await client.connect("127.0.0.1", self.port, self.path(client), wait_s=30)
            except (OSError, ConnectionError, TimeoutError) as exc:
                key = f"{type(exc).__name__}: {exc}"[:60]
                if client.close_code:
                    key = f"close {client.close_code}"
                self.failures[key] = self.failures.get(key, 0) + 1
                attempt += 1
                continue
            client.on_close = self.on_close
            return


def live_times(
    clients: list[WSClient], driver: Driver, since_welcome: int, catch_up: bool
) -> tuple[list[float], int, set[int]]:
    """Per client, when it was live again: its new welcome, and (with `catch_up`) every event
    committed before that welcome received. Returns (times, clients not live, live indices)."""
    done = sorted((t, seq) for seq, t in driver.done_at.items())
    done_times = [t for t, _ in done]
    # highest seq such that every seq up to it had committed by time t
    prefix_max: list[int] = []
    best = 0
    for _, seq in done:
        best = max(best, seq)
        prefix_max.append(best)
    times: list[float] = []
    not_live = 0
    live: set[int] = set()
    for c in clients:
        if c.welcome_count < since_welcome:
            not_live += 1
            continue
        i = bisect.bisect_right(done_times, c.welcome_at)
        target = prefix_max[i - 1] if i else 0
        live_at = c.welcome_at
        if target and catch_up:
            received = [t for s, t in zip(c.h_seq, c.h_time, strict=True) if s == target]
            if not received:
                not_live += 1
                continue
            live_at = max(live_at, received[-1])
        times.append(live_at)
        live.add(c.index)
    return times, not_live, live


def audit(
    clients: list[WSClient], expected: set[int], check_order: bool, live: set[int]
) -> dict[str, Any]:
    lost = dup = disorder = worst = lost_live = 0
    clients_losing = 0
    for c in clients:
        seqs = list(c.h_seq)
        got = set(seqs)
        missing = len(expected - got)
        lost += missing
        if c.index in live:
            lost_live += missing
        worst = max(worst, missing)
        clients_losing += missing > 0
        dup += len(seqs) - len(got)
        if check_order:
            eids = c.h_eid
            disorder += sum(1 for a, b in itertools.pairwise(eids) if b <= a)
    return {
        "lost": lost,
        "lost_by_live_clients": lost_live,
        "clients_losing": clients_losing,
        "worst_client_lost": worst,
        "duplicated": dup,
        "out_of_order": disorder if check_order else "n/a",
    }


async def run_target(
    kind: str, args: argparse.Namespace, users: Users, db_url: str, bus_url: str, workdir: Any
) -> dict[str, Any]:
    n = args.clients
    port_a = free_port()
    servers: list[ServerProcess] = []

    def make_a(gen: int) -> ServerProcess:
        if kind == "baseline":
            return baseline_server(f"baseline-{gen}", workdir, port_a)
        return bugstream_server(
            f"bugstream-A{gen}",
            workdir,
            port_a,
            database_url=db_url,
            bus_url=bus_url,
            per_user_limit=args.per_user_limit,
            max_connections=max(10_000, n + 100),
        )

    a = make_a(1)
    servers.append(a)
    if kind == "bugstream":
        b = bugstream_server(
            "bugstream-B",
            workdir,
            free_port(),
            database_url=db_url,
            bus_url=bus_url,
            per_user_limit=args.per_user_limit,
        )
        servers.append(b)
        events_url = b.http_url
    else:
        events_url = a.http_url
    rec = Recorder()
    rec.keep_history = True
    clients = [WSClient(i, rec) for i in range(n)]
    driver = Driver(
        events_url,
        baseline=kind == "baseline",
        token=users.admin_token(),
        project_id=users.seed.project_id,
        rec=rec,
    )
    row: dict[str, Any] = {
        "server": kind,
        "clients": n,
        "signal": args.signal,
        "backoff": args.backoff,
    }
    reconnector: Reconnector | None = None
    try:
        await asyncio.gather(*(s.start() for s in servers))
        paths = [f"/ws?token={users.token_of(i)}" for i in range(n)]
        connect_s, errors = await connect_all(clients, port_a, paths)
        row["connected"] = sum(1 for c in clients if c.welcome_count)
        row["initial_connect_s"] = connect_s
        if errors:
            row["connect_errors"] = errors
        deadline = time.monotonic() + args.max_seconds
        reconnector = Reconnector(
            port_a, users, resume=kind == "bugstream", deadline=deadline, backoff=args.backoff
        )
        for c in clients:
            c.on_close = reconnector.on_close
        stop = asyncio.Event()
        traffic = asyncio.create_task(driver.steady(args.rate, args.max_seconds, stop))
        await asyncio.sleep(args.before)
        sig = signal.SIGKILL if args.signal == "kill" else signal.SIGTERM
        t_signal = time.monotonic()
        a.signal(sig)
        exit_code = await a.wait_exit(30)
        t_exited = time.monotonic()
        a2 = make_a(2)
        servers.append(a2)
        await a2.start()
        t_ready = time.monotonic()
        cpu_start = a2.cpu()

        def all_back() -> bool:
            return all(c.welcome_count >= 2 for c in clients)

        await wait_until(all_back, max(1.0, deadline - time.monotonic()), step=0.05)
        if kind == "bugstream":
            # Wait for the catch-up too: every client has the newest event committed before the
            # last welcome (replays of a long outage take a while at thousands of clients).
            committed_by_then = [s for s, t in driver.done_at.items() if t <= time.monotonic()]
            target = max(committed_by_then, default=0)

            def all_caught_up() -> bool:
                return all(max(c.h_seq[-20:], default=0) >= target for c in clients)

            await wait_until(all_caught_up, max(1.0, deadline - time.monotonic()), step=0.5)
        # the audit below checks what actually arrived
        await asyncio.sleep(args.after)
        cpu_storm = a2.cpu() - cpu_start
        stop.set()
        await traffic
        await asyncio.sleep(args.drain)
        times, not_live, live = live_times(
            clients, driver, since_welcome=2, catch_up=kind == "bugstream"
        )
        last_live = max(times) if times else float("nan")
        welcomes = [c.welcome_at for c in clients if c.welcome_count >= 2]
        expected = set(driver.ok) if kind == "bugstream" else set(range(1, driver.seq + 1))
        row.update(
            exit_code=exit_code,
            down_s=t_exited - t_signal,
            restart_ready_s=t_ready - t_signal,
            all_welcomed_s=(max(welcomes) - t_signal) if welcomes else float("nan"),
            all_live_s=last_live - t_signal,
            live_p50_s=(sorted(times)[len(times) // 2] - t_signal) if times else float("nan"),
            live_after_ready_s=last_live - t_ready,
            not_live=not_live,
            reconnect_attempts=reconnector.attempts,
            reconnect_failures=reconnector.failures or "",
            drop_codes=reconnector.drop_codes,
            restarted_cpu_s=cpu_storm,
            events_attempted=driver.seq,
            events_committed=len(driver.ok),
            requests_failed=driver.failed or "",
            **audit(clients, expected, check_order=kind == "bugstream", live=live),
        )
        if kind == "baseline":
            published = set(driver.ok)
            row["lost_of_published"] = sum(len(published - set(c.h_seq)) for c in clients)
        other: dict[str, int] = {}
        for c in clients:
            for k, v in c.other_messages.items():
                other[k] = other.get(k, 0) + v
        row["other_messages"] = other or ""
    finally:
        if reconnector is not None:
            reconnector.deadline = 0
        await close_all(clients)
        await driver.aclose()
        for s in servers:
            await s.stop()
    return row


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir, env = begin_run("storm")
    db_url = await create_postgres_db(args.database)
    bus_url = await flush_redis(args.redis_db)
    t = time.monotonic()
    n_users = math.ceil(args.clients / args.per_user)
    users = Users(await seed(db_url, workdir, n_users), args.per_user)
    print(f"seeded {n_users} users in {time.monotonic() - t:.1f} s", flush=True)
    rows = []
    for kind in args.servers:
        print(f"{kind}: storm of {args.clients} clients ...", flush=True)
        rows.append(await run_target(kind, args, users, db_url, bus_url, workdir))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"benchmark": "reconnect_storm", "environment": env, "args": vars(args), "results": rows}


def report(data: dict[str, Any]) -> None:
    rows = data["results"]
    main_cols = [
        "server",
        "clients",
        "signal",
        "backoff",
        "connected",
        "restart_ready_s",
        "all_welcomed_s",
        "live_p50_s",
        "all_live_s",
        "live_after_ready_s",
        "not_live",
        "events_attempted",
        "events_committed",
        "lost",
        "lost_by_live_clients",
        "clients_losing",
        "duplicated",
        "out_of_order",
    ]
    print_table("Reconnect storm (times from the signal to instance A)", rows, main_cols)
    extra = [
        {
            "server": r["server"],
            "down_s": r["down_s"],
            "attempts": r["reconnect_attempts"],
            "restarted_cpu_s": r["restarted_cpu_s"],
            "drop_codes": r["drop_codes"],
            "failures": r["reconnect_failures"],
            "requests_failed": r["requests_failed"],
            "other_messages": r["other_messages"],
        }
        for r in rows
    ]
    print_table("Details", extra, list(extra[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--per-user", type=int, default=5, help="connections per seeded user")
    parser.add_argument(
        "--per-user-limit",
        type=int,
        default=10,
        help="BUGSTREAM_WS_MAX_CONNECTIONS_PER_USER (default 10, twice the default --per-user: "
        "a killed instance's leases still count for up to 30 s)",
    )
    parser.add_argument("--signal", choices=["term", "kill"], default="term")
    parser.add_argument(
        "--backoff",
        choices=["fast", "sdk"],
        default="fast",
        help="fast: retry after min(1 s, 0.1 s * 2^n) x jitter (all at once); sdk: bugstream's "
        "client backoff, full jitter in [0, 2^n] s",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="events per second, whole run")
    parser.add_argument("--before", type=float, default=3.0, help="seconds of traffic first")
    parser.add_argument("--after", type=float, default=2.0, help="traffic after all are back")
    parser.add_argument("--drain", type=float, default=3.0)
    parser.add_argument("--max-seconds", type=float, default=180.0)
    parser.add_argument("--database", default="bench_storm")
    parser.add_argument("--redis-db", type=int, default=13)
    add_run_options(parser, servers=("bugstream", "baseline"))
    run_benchmark(parser, main_async, report)


if __name__ == "__main__":
    main()
