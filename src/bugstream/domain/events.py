"""The event catalog: every event type, its event names and the payload fields it must carry.

An event travels as the envelope `{"type", "event", "payload", "event_id"}`. `event_id` is a
monotonic integer given by the outbox; per client, events arrive in event-id order, which is
commit order.

The 20 events of the spec are `SPEC_EVENTS`. bugstream adds one type of its own, `membership`
(`added`, `removed`), because membership changes decide who may see a project's events and the
gateway must learn of them on the same ordered path as everything else (docs/design.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    BUG_REPORT = "bug_report"
    COMMENT = "comment"
    PROJECT = "project"
    USER = "user"
    NOTIFICATION = "notification"
    MEMBERSHIP = "membership"


class EventName(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"
    STATUS_CHANGED = "status_changed"
    ASSIGNED = "assigned"
    UNASSIGNED = "unassigned"
    BUG_ASSIGNED = "bug_assigned"
    COMMENT_ADDED = "comment_added"
    REMINDER_SENT = "reminder_sent"
    ADDED = "added"
    REMOVED = "removed"


EVENT_NAMES: dict[EventType, tuple[EventName, ...]] = {
    EventType.BUG_REPORT: (
        EventName.CREATED,
        EventName.UPDATED,
        EventName.DELETED,
        EventName.STATUS_CHANGED,
        EventName.ASSIGNED,
        EventName.UNASSIGNED,
    ),
    EventType.COMMENT: (EventName.CREATED, EventName.UPDATED, EventName.DELETED),
    EventType.PROJECT: (EventName.CREATED, EventName.UPDATED, EventName.DELETED),
    EventType.USER: (
        EventName.CREATED,
        EventName.UPDATED,
        EventName.DELETED,
        EventName.STATUS_CHANGED,
    ),
    EventType.NOTIFICATION: (
        EventName.BUG_ASSIGNED,
        EventName.COMMENT_ADDED,
        EventName.STATUS_CHANGED,
        EventName.REMINDER_SENT,
    ),
    EventType.MEMBERSHIP: (EventName.ADDED, EventName.REMOVED),
}

REQUIRED_PAYLOAD_FIELDS: dict[EventType, tuple[str, ...]] = {
    EventType.BUG_REPORT: (
        "id",
        "title",
        "description",
        "status",
        "priority",
        "assignee_id",
        "project_id",
        "created_at",
        "updated_at",
    ),
    EventType.COMMENT: ("id", "bug_report_id", "user_id", "content", "created_at", "updated_at"),
    EventType.PROJECT: ("id", "name", "description", "created_at", "updated_at"),
    EventType.USER: ("id", "username", "email", "role", "status", "created_at", "updated_at"),
    EventType.NOTIFICATION: ("id", "type", "user_id", "message", "read", "created_at"),
    EventType.MEMBERSHIP: ("project_id", "user_id", "created_at"),
}

#: The spec's 20 (type, event) pairs (6 + 3 + 3 + 4 + 4).
SPEC_EVENTS: tuple[tuple[EventType, EventName], ...] = tuple(
    (event_type, name)
    for event_type, names in EVENT_NAMES.items()
    if event_type is not EventType.MEMBERSHIP
    for name in names
)


def is_known_event(event_type: str, event: str) -> bool:
    try:
        return EventName(event) in EVENT_NAMES[EventType(event_type)]
    except ValueError:
        return False


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
