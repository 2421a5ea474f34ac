"""The kernel's floor: what one `send()` on loopback TCP costs, by frames per write.

    uv run python bench/send_floor.py --clients 1000

No WebSocket, no event loop, no server code: a process on one core holds N accepted sockets
and sends a 490-byte frame to each in a plain loop, `--frames` of them per `send()`; a process
on the other core reads all of them. The sender's CPU per frame (utime + stime from
/proc/self) is the least any server on this machine can pay per delivery at that many frames
per write: what bugstream's fan-out is compared against (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import time

FRAME = b"x" * 490


def drain(port: int, clients: int, seconds: float) -> None:
    """The reading side: N connections, read everything until told to stop."""
    os.sched_setaffinity(0, {1})
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
    poller = select.epoll()
    by_fd = {}
    for s in socks:
        s.setblocking(False)
        poller.register(s.fileno(), select.EPOLLIN)
        by_fd[s.fileno()] = s
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for fd, _ in poller.poll(0.2):
            try:
                if not by_fd[fd].recv(1 << 16):
                    return
            except BlockingIOError:
                pass


def measure(socks: list[socket.socket], frames: int, rounds: int, pause: float) -> dict[str, float]:
    data = FRAME * frames
    t0 = os.times()
    for _ in range(rounds):
        for s in socks:
            s.send(data)
        if pause:
            time.sleep(pause)
    t1 = os.times()
    n = rounds * len(socks) * frames
    user, system = t1.user - t0.user, t1.system - t0.system
    return {
        "frames_per_write": frames,
        "paced": bool(pause),
        "us_per_frame": (user + system) / n * 1e6,
        "user_us": user / n * 1e6,
        "sys_us": system / n * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]  # a quiet machine is part of the result
    print(f"load average at start {load_at_start:.2f}")
    os.sched_setaffinity(0, {0})
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(args.clients + 16)
    port = listener.getsockname()[1]
    child = os.fork()
    if child == 0:
        drain(port, args.clients, 60.0)
        os._exit(0)
    socks = [listener.accept()[0] for _ in range(args.clients)]
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    time.sleep(1.0)
    rows = [
        measure(socks, 1, 100, 0.02),  # one frame per write, 50 rounds/s (paced, like idle)
        measure(socks, 1, 100, 0.0),  # one frame per write, back to back
        measure(socks, 5, 40, 0.0),
        measure(socks, 10, 20, 0.0),
    ]
    for s in socks:
        s.close()
    os.waitpid(child, 0)
    print("| frames per write | paced | µs per frame | user µs | sys µs |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['frames_per_write']} | {'50/s' if r['paced'] else 'no'} | "
            f"{r['us_per_frame']:.2f} | {r['user_us']:.2f} | {r['sys_us']:.2f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            result = {"benchmark": "send_floor", "clients": args.clients, "rows": rows}
            json.dump({**result, "loadavg_at_start": load_at_start}, f)


if __name__ == "__main__":
    main()
