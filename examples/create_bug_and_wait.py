"""Create a bug report over the WebSocket, then wait for its event; show error handling.

    export BUGSTREAM_URL=ws://localhost:8000/ws
    export BUGSTREAM_TOKEN=$(bugstream issue-token --username alice)
    python examples/create_bug_and_wait.py --project 1 --title "Crash on save"

Commands return the acknowledgement's result (the created entity as JSON) or raise the error,
typed by its code: ValidationFailed, NotFound, Forbidden, Conflict, or CommandError.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from bugstream.client import (
    BugReport,
    Client,
    CommandTimeout,
    Forbidden,
    NotFound,
    ValidationFailed,
)


async def create_and_wait(url: str, token: str, project_id: int, title: str) -> None:
    async with Client(url, token=token) as client:
        try:
            bug = await client.send(
                "bug_report.create",
                {"project_id": project_id, "title": title, "priority": "high"},
                timeout=10,
            )
        except (NotFound, Forbidden) as exc:
            print(f"cannot create it: {exc.code}: {exc.message}")
            return
        except CommandTimeout:
            print("no answer in 10 s; it may or may not have been created")
            return
        print(f"created bug #{bug['id']} ({bug['status']}, {bug['priority']})")

        # Every change comes back as an event, to this client and to everyone else allowed.
        async for event in client.events():
            if event.name == "bug_report.created" and event.payload_as(BugReport).id == bug["id"]:
                print(f"event #{event.event_id} confirms it: {event.payload_as(BugReport).title!r}")
                break

        # Errors are typed: a bad value names the field and the rule it broke.
        try:
            await client.send("bug_report.update", {"id": bug["id"], "priority": "urgent"})
        except ValidationFailed as exc:
            for field in exc.fields:
                print(f"refused: {field['field']}: {field['rule']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("BUGSTREAM_URL", "ws://localhost:8000/ws"))
    parser.add_argument("--token", default=os.environ.get("BUGSTREAM_TOKEN"))
    parser.add_argument("--project", type=int, required=True, help="project id")
    parser.add_argument("--title", default="Crash on save")
    args = parser.parse_args()
    if not args.token:
        parser.error("set BUGSTREAM_TOKEN or pass --token")
    asyncio.run(create_and_wait(args.url, args.token, args.project, args.title))


if __name__ == "__main__":
    main()
