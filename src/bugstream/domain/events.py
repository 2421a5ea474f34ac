"""Events as the outbox writes them and the bus carries them. What each event type and name
means (its audience, payload, conflation) is the catalog's: `bugstream.domain.catalog`.

An event travels as the envelope `{"type", "event", "payload", "event_id"}`. `event_id` is a
monotonic integer given by the outbox; per client, events arrive in event-id order, which is
commit order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bugstream.domain.catalog import (
    EVENT_NAMES,
    REQUIRED_PAYLOAD_FIELDS,
    SPEC_EVENTS,
    EventName,
    EventType,
    is_known_event,
)

__all__ = [
    "EVENT_NAMES",
    "REQUIRED_PAYLOAD_FIELDS",
    "SPEC_EVENTS",
    "Event",
    "EventName",
    "EventType",
    "PendingEvent",
    "is_known_event",
]


@dataclass(frozen=True, slots=True)
class Event:
    """One committed event, as the outbox holds it and the bus carries it.

    `project_id` and `user_id` are routing keys, not part of the envelope: project-scoped events
    carry their project, notification events their target user, user events the user they are
    about. The gateway derives each event's audience from them.
    """

    event_id: int
    type: EventType
    event: EventName
    payload: dict[str, Any]
    project_id: int | None
    user_id: int | None
    #: When the outbox row was written (seconds since the epoch): delivery latency starts here.
    committed_at: float = 0.0

    def envelope(self) -> dict[str, Any]:
        """The message a client receives."""
        return {
            "type": self.type.value,
            "event": self.event.value,
            "payload": self.payload,
            "event_id": self.event_id,
        }


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event written in a transaction that has not committed yet: no id until insert."""

    type: EventType
    event: EventName
    payload: dict[str, Any]
    project_id: int | None = None
    user_id: int | None = None

    def __post_init__(self) -> None:
        if self.event not in EVENT_NAMES[self.type]:
            raise ValueError(f"{self.type}.{self.event} is not in the event catalog")
        missing = [f for f in REQUIRED_PAYLOAD_FIELDS[self.type] if f not in self.payload]
        if missing:
            raise ValueError(f"{self.type}.{self.event} payload lacks {missing}")
