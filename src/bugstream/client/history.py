"""The event history over REST (`GET /api/v1/events`): the events after an id, as the stream
would deliver them, page by page. For scripts and catching up before (or instead of)
following `/ws`: `async for event in history(base_url, token, after=n): ...`.

Over httpx (the SDK's HTTP client, as for the SSE fallback): `history` keeps one connection
for all its pages.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

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
    base_url: str,
    token: str,
    *,
    after: int = 0,
    limit: int = 100,
    http: httpx.AsyncClient | None = None,
) -> EventsPage:
    """One page of `GET {base_url}/api/v1/events`. `ResyncRequired` when events after `after`
    are no longer kept; any other error answer raises its typed `BugstreamError`. `http`: a
    client to reuse (else one is made for this page)."""
    if urllib.parse.urlsplit(base_url).scheme not in {"http", "https"}:
        raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
    if http is None:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as own:
            return await fetch_events(base_url, token, after=after, limit=limit, http=own)
    response = await http.get(
        f"{base_url.rstrip('/')}/api/v1/events",
        params={"after": after, "limit": limit},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    body = _json(response)
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
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        while True:
            page = await fetch_events(base_url, token, after=after, limit=limit, http=http)
            for event in page.events:
                yield event
            if not page.has_more:
                return
            after = page.next_after


def _json(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of the answer, an error answer's too; an answer that is not bugstream's
    (a proxy's error page) raises `httpx.HTTPStatusError`."""
    try:
        data = response.json()
    except ValueError:
        response.raise_for_status()
        raise
    if not isinstance(data, dict):
        response.raise_for_status()
        raise ValueError(f"unexpected answer: {data!r:.200}")
    return data
