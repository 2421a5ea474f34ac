"""Small helpers for what goes over the wire: JSON in and out, payload fields, times."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

log = logging.getLogger("bugstream.client")


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def decode(raw: str | bytes) -> dict[str, Any]:
    """A message as a dict; {} (ignored by the caller) for anything that is not a JSON object."""
    try:
        message = json.loads(raw)
    except ValueError:
        log.warning("ignoring a message that is not JSON: %.200r", raw)
        return {}
    return message if isinstance(message, dict) else {}


def payload_of(message: dict[str, Any]) -> dict[str, Any]:
    payload = message.get("payload")
    return payload if isinstance(payload, dict) else {}


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


async def maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (no "never retrieved" warning)."""
    if not future.cancelled():
        future.exception()


def stream_url(url: str, last_event_id: int | None) -> str:
    """The URL to connect to, with `last_event_id` to resume after the last event seen (and
    never a token: it travels in the Authorization header)."""
    resume = {} if last_event_id is None else {"last_event_id": str(last_event_id)}
    return with_query(url, drop=("last_event_id", "token"), **resume)


def with_query(url: str, *, drop: tuple[str, ...] = (), **params: str) -> str:
    """`url` without the query parameters named in `drop`, and with these set (replacing
    any of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params and k not in drop]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


def message_limit(welcome: dict[str, Any]) -> int | None:
    """`limits.max_message_bytes` of a welcome, if it says."""
    limits = welcome.get("limits")
    value = limits.get("max_message_bytes") if isinstance(limits, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
