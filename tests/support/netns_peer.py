"""The programs a network-namespace test runs inside its namespaces (`ip netns exec NS python
-m tests.support.netns_peer ...`): a process's network namespace is fixed at its start.

    wait   --url http://127.0.0.1:PORT                 until the server answers HTTP
    project --url ... --token ADMIN --member-token T  make a project with T's user in it; print
                                                       its id
    write  --url ... --token T --project P --count N --pace S
                                                       create N bugs over REST, S s apart
    listen --url ws://HOST:PORT/ws --token T --out FILE
                                                       the SDK, writing JSON lines to FILE:
                                                       {"start": id}, {"state": phase, "t": s},
                                                       {"id": event_id, "t": s}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import IO, Any

import httpx

from bugstream.client import Backoff, Client, ConnectionState


def _wait(url: str) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return 0
        except httpx.HTTPError:
            time.sleep(0.1)
    print(f"{url} did not answer", file=sys.stderr)
    return 1


def _write(url: str, token: str, project: int, count: int, pace: float) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
        for n in range(count):
            response = http.post("/api/v1/bugs", json={"project_id": project, "title": f"bug {n}"})
            response.raise_for_status()
            time.sleep(pace)
    return 0


def _project(url: str, admin_token: str, member_token: str) -> int:
    with httpx.Client(base_url=f"{url}/api/v1", timeout=10) as http:
        admin = {"Authorization": f"Bearer {admin_token}"}
        project = http.post("/projects", json={"name": "Cut"}, headers=admin)
        project.raise_for_status()
        me = http.get("/users/me", headers={"Authorization": f"Bearer {member_token}"})
        me.raise_for_status()
        project_id = project.json()["id"]
        member = {"user_id": me.json()["id"]}
        http.post(f"/projects/{project_id}/members", json=member, headers=admin).raise_for_status()
    print(project_id)
    return 0


def _line(out: IO[str], **fields: Any) -> None:
    out.write(json.dumps(fields) + "\n")
    out.flush()


async def _listen(url: str, token: str, path: str) -> int:
    # Gives a silent link up after 1 + 2 + 1 s; retries 0.25-2 s apart, for long enough.
    client = Client(
        url,
        token=token,
        backoff=Backoff(initial=0.25, max_delay=2.0, max_attempts=100),
        ping_interval=1.0,
        ping_timeout=2.0,
        close_timeout=1.0,
        open_timeout=2.0,
    )
    with open(path, "w", encoding="utf-8") as out:

        def on_state(state: ConnectionState) -> None:
            _line(out, state=state.phase.value, t=time.time())

        client.on_state(on_state)
        await client.connect()
        _line(out, start=client.last_event_id)
        async for event in client.events():
            _line(out, id=event.event_id, t=time.time())
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["wait", "project", "write", "listen"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token")
    parser.add_argument("--member-token")
    parser.add_argument("--project", type=int)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--pace", type=float, default=0.1)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.mode == "wait":
        return _wait(args.url)
    if args.mode == "project":
        return _project(args.url, args.token, args.member_token)
    if args.mode == "write":
        return _write(args.url, args.token, args.project, args.count, args.pace)
    return asyncio.run(_listen(args.url, args.token, args.out))


if __name__ == "__main__":
    sys.exit(main())
