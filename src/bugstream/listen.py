"""`bugstream listen`: tail a server's events in the terminal, with reconnect and resume.

    bugstream listen --url ws://localhost:8000/ws --token-file ~/.bugstream-token
    #42 bug_report.created  id=7 title='Crash on save' project=1

Events go to stdout, one a line (`--json`: the server's JSON envelope, one a line);
connection changes go to stderr. Exits 1 with a message when the server ends the session
for good (bad or expired token, blocked, attempts exhausted), 0 after `--count` events.
Only `bugstream.client` is needed, so `python -m bugstream.listen` runs without the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bugstream.client import (
    Backoff,
    Client,
    ClientError,
    ConnectionState,
    Event,
    Phase,
    ResyncRequired,
)
from bugstream.client.events import RawPayload
from bugstream.client.transport import TRANSPORTS

TOKEN_ENV = "BUGSTREAM_TOKEN"
_TEXT_LIMIT = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the server's WebSocket URL, ws://host/ws")
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument("--token", help=f"a JWT (default: ${TOKEN_ENV})")
    tokens.add_argument(
        "--token-file",
        type=Path,
        help="a file holding the JWT; read again whenever a fresh token is needed",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument(
        "--last-event-id", type=int, help="resume after this event id (default: from now on)"
    )
    parser.add_argument("--count", type=int, help="exit after this many events")
    parser.add_argument(
        "--max-attempts", type=int, default=5, help="reconnect attempts (default 5)"
    )
    parser.add_argument(
        "--initial-delay", type=float, default=2.0, help="first reconnect delay in s (default 2)"
    )
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="auto",
        help="auto (default): WebSocket, or the SSE fallback where WebSockets are blocked",
    )
    parser.add_argument("--quiet", action="store_true", help="no connection messages on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bugstream listen", description="Tail a bugstream server's events."
    )
    add_arguments(parser)
    return parser


#: Free text is quoted (and clipped); ids, statuses and roles are not.
_TEXT_FIELDS = frozenset({"title", "content", "message", "name", "username"})


def _show(key: str, value: Any) -> str:
    if key in _TEXT_FIELDS and isinstance(value, str):
        if len(value) > _TEXT_LIMIT:
            value = value[: _TEXT_LIMIT - 3] + "..."
        return repr(value)
    return str(value)


def _fields(event: Event) -> list[tuple[str, Any]]:
    p = event.raw
    match event.type:
        case "bug_report":
            extra: list[tuple[str, Any]] = []
            if event.event == "status_changed":
                extra = [("status", p.get("status"))]
            elif event.event in ("assigned", "unassigned"):
                extra = [("assignee", p.get("assignee_id"))]
            return [
                ("id", p.get("id")),
                ("title", p.get("title")),
                *extra,
                ("project", p.get("project_id")),
            ]
        case "comment":
            return [
                ("id", p.get("id")),
                ("bug", p.get("bug_report_id")),
                ("user", p.get("user_id")),
                ("content", p.get("content")),
            ]
        case "project":
            return [("id", p.get("id")), ("name", p.get("name"))]
        case "user":
            return [
                ("id", p.get("id")),
                ("username", p.get("username")),
                ("role", p.get("role")),
                ("status", p.get("status")),
            ]
        case "notification":
            return [
                ("id", p.get("id")),
                ("user", p.get("user_id")),
                ("bug", p.get("bug_report_id")),
                ("message", p.get("message")),
            ]
        case "membership":
            return [("project", p.get("project_id")), ("user", p.get("user_id"))]
    return list(p.items())[:6]


def format_event(event: Event) -> str:
    """`#42 bug_report.created  id=7 title='Crash on save' project=1`."""
    fields = " ".join(f"{k}={_show(k, v)}" for k, v in _fields(event))
    unknown = "  (unknown to this version)" if isinstance(event.payload, RawPayload) else ""
    return f"#{event.event_id} {event.name}  {fields}{unknown}"


def format_resync(notice: ResyncRequired, as_json: bool) -> str:
    if as_json:
        payload = {
            "last_event_id": notice.last_event_id,
            "oldest_event_id": notice.oldest_event_id,
            "latest_event_id": notice.latest_event_id,
        }
        return json.dumps({"type": "resync_required", "payload": payload})
    return (
        f"! resync required: events after #{notice.last_event_id} are no longer kept "
        f"(oldest #{notice.oldest_event_id}); refetch state; continuing after "
        f"#{notice.latest_event_id}"
    )


def _status(state: ConnectionState, *, was_connected: bool, transport: str) -> str | None:
    if state.phase is Phase.CONNECTED:
        over = " over SSE (the WebSocket fallback)" if transport == "sse" else ""
        return f"connected ({state.connection_id}){over}"
    if state.phase is Phase.RECONNECTING and state.next_delay is not None:
        cause = f" (close code {state.close_code})" if state.close_code else ""
        what = "disconnected" if was_connected else "could not connect"
        return (
            f"{what}{cause}; reconnecting, attempt {state.attempt} of "
            f"{state.max_attempts} in {state.next_delay:.1f} s"
        )
    return None


def _token_source(args: argparse.Namespace) -> dict[str, Any]:
    if args.token_file is not None:
        path: Path = args.token_file.expanduser()

        def read_token() -> str:
            return path.read_text(encoding="utf-8").strip()

        read_token()  # fail now, with a clear message, if it cannot be read
        return {"token_provider": read_token}
    token = args.token or os.environ.get(TOKEN_ENV)
    if not token:
        raise ValueError(f"give --token, --token-file or ${TOKEN_ENV}")
    return {"token": token}


async def listen(args: argparse.Namespace) -> int:
    def out(line: str) -> None:
        print(line, flush=True)

    def err(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    connected = False

    def on_state(state: ConnectionState) -> None:
        nonlocal connected
        line = _status(state, was_connected=connected, transport=client.transport)
        connected = connected or state.phase is Phase.CONNECTED
        if line:
            err(line)

    def on_resync(notice: ResyncRequired) -> None:
        out(format_resync(notice, args.json))

    client = Client(
        args.url,
        last_event_id=args.last_event_id,
        backoff=Backoff(initial=args.initial_delay, max_attempts=args.max_attempts),
        on_resync=on_resync,
        transport=args.transport,
        **_token_source(args),
    )
    client.on_state(on_state)
    seen = 0
    async with client:
        if args.count == 0:
            return 0
        async for event in client.events():
            if args.json:
                out(json.dumps(event.envelope(), ensure_ascii=False))
            else:
                out(format_event(event))
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(listen(args))
    except KeyboardInterrupt:
        return 130
    except (ClientError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
