"""Log in with a username and password, and let the client keep its token fresh by itself.

    export BUGSTREAM_URL=ws://localhost:8000/ws
    export BUGSTREAM_USERNAME=alice BUGSTREAM_PASSWORD=...
    python examples/token_provider.py --seconds 60

The token provider is called for the first connection, again before each token expires (the
client sends the new one on the same connection: no reconnect), and once more if the server
closes with 4001/4002. Here it logs in over REST (POST /api/v1/auth/token) with the standard
library; any callable, sync or async, returning a JWT will do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from bugstream.client import Client


def http_base(ws_url: str) -> str:
    """ws://host:port/ws -> http://host:port (wss -> https)."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def log_in(base_url: str, username: str, password: str) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 (the URL is the user's own server)
        f"{base_url}/api/v1/auth/token",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        answer: dict[str, object] = json.load(response)
    return answer


async def stay_connected(url: str, username: str, password: str, seconds: float) -> None:
    fetched = 0

    async def token_provider() -> str:
        nonlocal fetched
        answer = await asyncio.to_thread(log_in, http_base(url), username, password)
        fetched += 1
        print(f"fetched token {fetched} (valid {answer['expires_in']} s)", flush=True)
        return str(answer["access_token"])

    async with Client(url, token_provider=token_provider) as client:
        connection = client.connection_id
        print(f"connected as {client.welcome['user']['username']} ({connection})", flush=True)

        async def print_events() -> None:
            async for event in client.events():
                print(f"#{event.event_id} {event.name}", flush=True)

        with contextlib.suppress(TimeoutError):  # stop after `seconds`
            async with asyncio.timeout(seconds):
                await print_events()
        same = "the same connection" if client.connection_id == connection else "reconnected"
        print(f"after {seconds:g} s: {fetched} tokens, {same} ({client.connection_id})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("BUGSTREAM_URL", "ws://localhost:8000/ws"))
    parser.add_argument("--username", default=os.environ.get("BUGSTREAM_USERNAME"))
    parser.add_argument("--password", default=os.environ.get("BUGSTREAM_PASSWORD"))
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to stay connected")
    args = parser.parse_args()
    if not (args.username and args.password):
        parser.error("set BUGSTREAM_USERNAME and BUGSTREAM_PASSWORD (or pass them)")
    asyncio.run(stay_connected(args.url, args.username, args.password, args.seconds))


if __name__ == "__main__":
    main()
