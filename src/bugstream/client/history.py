"""The event history over REST (`GET /api/v1/events`): the events after an id, as the stream
would deliver them, page by page. For scripts and catching up before (or instead of)
following `/ws`: `async for event in history(base_url, token, after=n): ...`.

Plain HTTP from the standard library, on a worker thread: the SDK needs no HTTP client of its
own (it depends on `websockets` and the shared domain only).
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bugstream.client.errors import ResyncRequired, error_from_payload
from bugstream.client.events import Event, parse_event

#: Seconds one page may take.
HTTP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class EventsPage:
    """One page: `events` oldest first; ask again with `after=next_after` while `has_more`."""

    events: list[Event]
    next_after: int
    latest_event_id: int
    has_more: bool


async def fetch_events(
    base_url: str, token: str, *, after: int = 0, limit: int = 100
) -> EventsPage:
    """One page of `GET {base_url}/api/v1/events`. `ResyncRequired` when events after `after`
    are no longer kept; any other error answer raises its typed `BugstreamError`."""
    if urllib.parse.urlsplit(base_url).scheme not in {"http", "https"}:
        raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
    query = urllib.parse.urlencode({"after": after, "limit": limit})
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        f"{base_url.rstrip('/')}/api/v1/events?{query}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    body = await asyncio.to_thread(_get, request)
    if body.get("type") == "error":
        payload = body.get("payload", {})
        if payload.get("code") == "resync_required":
            raise ResyncRequired(
                int(payload["last_event_id"]),
                int(payload["oldest_event_id"]),
                int(payload["latest_event_id"]),
            )
        raise error_from_payload(payload)
    events = [e for e in map(parse_event, body["items"]) if e is not None]
    return EventsPage(events, body["next_after"], body["latest_event_id"], body["has_more"])


async def history(
    base_url: str, token: str, *, after: int = 0, limit: int = 100
) -> AsyncIterator[Event]:
    """Every event after `after` you may see, up to the newest the server had when the last
    page was read; connect to `/ws` with `last_event_id` = the last one's id to go on live."""
    while True:
        page = await fetch_events(base_url, token, after=after, limit=limit)
        for event in page.events:
            yield event
        if not page.has_more:
            return
        after = page.next_after


def _get(request: urllib.request.Request) -> dict[str, Any]:
    """The JSON body of the answer, an error answer's too."""
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
            data: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as answer:
        with answer:
            data = json.load(answer)
    return data
