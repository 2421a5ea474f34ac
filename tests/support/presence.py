"""Reading `presence` messages off a test client."""

from __future__ import annotations

from typing import Any

from tests.support.live import Client


async def presence_messages(client: Client, quiet: float) -> list[dict[str, Any]]:
    """Every presence message until none has arrived for `quiet` seconds (others skipped)."""
    found: list[dict[str, Any]] = []
    while True:
        try:
            message = await client.next(quiet)
        except TimeoutError:
            return found
        if message["type"] == "presence":
            assert "event_id" not in message  # state, not history: never replayed
            found.append(message)
