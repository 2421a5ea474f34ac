"""Print the events a user may see, as they happen, with handlers per event type.

    export BUGSTREAM_URL=ws://localhost:8000/ws
    export BUGSTREAM_TOKEN=$(bugstream issue-token --username alice)
    python examples/tail_events.py            # until Ctrl-C
    python examples/tail_events.py --count 5  # stop after five events

The client reconnects by itself (2, 4, 8, 16, 32 s, with jitter) and resumes after the last
event it saw, so nothing is missed or repeated across a server restart.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from bugstream.client import BugReport, Client, Comment, ConnectionState, Event


async def tail(url: str, token: str, count: int | None) -> None:
    client = Client(url, token=token)

    @client.on_state
    def show_state(state: ConnectionState) -> None:
        print(f"[{state}]", flush=True)  # connected / reconnecting, attempt n of 5 / closed

    @client.on("bug_report", "created")
    def bug_created(event: Event) -> None:
        bug = event.payload_as(BugReport)  # a typed domain model
        print(f"new bug #{bug.id} in project {bug.project_id}: {bug.title!r}", flush=True)

    @client.on("comment")
    def comment_changed(event: Event) -> None:
        comment = event.payload_as(Comment)
        print(f"comment {event.event} on bug #{comment.bug_report_id}", flush=True)

    seen = 0
    async with client:
        async for event in client.events():  # handlers run first, then the loop body
            print(f"#{event.event_id} {event.name}", flush=True)
            seen += 1
            if count is not None and seen >= count:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("BUGSTREAM_URL", "ws://localhost:8000/ws"))
    parser.add_argument("--token", default=os.environ.get("BUGSTREAM_TOKEN"))
    parser.add_argument("--count", type=int, help="stop after this many events")
    args = parser.parse_args()
    if not args.token:
        parser.error("set BUGSTREAM_TOKEN or pass --token")
    asyncio.run(tail(args.url, args.token, args.count))


if __name__ == "__main__":
    main()
