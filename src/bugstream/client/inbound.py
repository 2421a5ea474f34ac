"""Routing what the server sends after the welcome: events to the application's queue (each
once: ids at or below the last one seen are dropped), answers to the commands waiting for
them, resync and skipped notices to the queue, presence messages to `client.presence`, other
errors to the attempt's outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bugstream.client.delivery import Delivery
from bugstream.client.errors import ResyncRequired, error_from_payload
from bugstream.client.events import Event, Skipped, parse_event
from bugstream.client.outcome import Outcome
from bugstream.client.requests import PendingRequests
from bugstream.client.wire import as_int, payload_of
from bugstream.domain.protocol import ServerMessage

log = logging.getLogger("bugstream.client")


def route(
    message: dict[str, Any],
    *,
    last_event_id: int | None,
    delivery: Delivery,
    pending: PendingRequests,
    outcome: Outcome,
    wants: Callable[[Event], bool] = lambda event: True,
    presence: Callable[[dict[str, Any]], None] = lambda message: None,
) -> int | None:
    """Handle one message; returns the id a reconnect resumes after from now on. Events the
    declared subscription does not want are dropped here (they still count as received)."""
    if "event_id" in message and "event" in message:
        event = parse_event(message)
        if event is None:
            log.warning("ignoring a malformed event: %.200r", message)
            return last_event_id
        if last_event_id is not None and event.event_id <= last_event_id:
            return last_event_id  # already delivered (a replay overlapping the live stream)
        if wants(event):
            delivery.put(event)
        return event.event_id
    kind = message.get("type")
    payload = payload_of(message)
    if kind == ServerMessage.ACK:
        pending.answer(payload.get("request_id"), payload.get("result"), None)
    elif kind == ServerMessage.ERROR:
        request_id = payload.get("request_id")
        if request_id in pending:
            pending.answer(request_id, None, error_from_payload(payload))
        else:
            outcome.error = payload
            log.warning("server error: %s: %s", payload.get("code"), payload.get("message"))
    elif kind == ServerMessage.RESYNC_REQUIRED:
        resync = ResyncRequired(
            as_int(payload.get("last_event_id")),
            as_int(payload.get("oldest_event_id")),
            as_int(payload.get("latest_event_id")),
        )
        delivery.put(resync)
        # The server goes on after `latest_event_id`; a later reconnect resumes there.
        return max(last_event_id or 0, resync.latest_event_id)
    elif kind == ServerMessage.SKIPPED:
        ids = payload.get("event_ids")
        skipped = Skipped(
            tuple(i for i in ids if isinstance(i, int)) if isinstance(ids, list) else (),
            str(payload.get("reason", "")),
        )
        log.info("the server left out superseded events %s", list(skipped.event_ids))
        delivery.put(skipped)
    elif kind == ServerMessage.PRESENCE:
        presence(message)  # state, not an event: no id, never replayed (client/presence.py)
    return last_event_id
