"""Events as frames: each event is encoded once (with its conflation key) and the same bytes go
to every recipient; the `skipped` notice that names conflated events."""

from __future__ import annotations

import orjson

from bugstream.domain.catalog import CONFLATABLE
from bugstream.domain.events import Event
from bugstream.domain.protocol import ServerMessage
from bugstream.gateway.connection import Outgoing
from bugstream.gateway.frames import text_frame


def encode_event(event: Event) -> bytes:
    """The event's frame: encoded once, written to every recipient."""
    return text_frame(orjson.dumps(event.envelope()))


def outgoing(event: Event) -> Outgoing:
    key = (
        (event.type, event.payload.get("id")) if (event.type, event.event) in CONFLATABLE else None
    )
    return Outgoing(encode_event(event), key, event.event_id)


def skipped_frame(event_ids: list[int]) -> bytes:
    return text_frame(
        orjson.dumps(
            {
                "type": ServerMessage.SKIPPED.value,
                "payload": {
                    "event_ids": event_ids,
                    "reason": "superseded by a newer state of the same entity while the "
                    "client was behind",
                },
            }
        )
    )
