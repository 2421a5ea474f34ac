"""Events as the SDK hands them to the application: typed envelopes around domain entities.

The server sends `{"type", "event", "payload", "event_id"}`; the SDK parses `payload` into the
shared domain's entity for the type (`bugstream.domain.models`): a `bug_report` event carries
a `BugReport`, a `comment` event a `Comment`, and so on. `raw` keeps the payload exactly as
sent, with any fields the entity does not model (a comment event's `project_id`, for one).
"""

from __future__ import annotations

import builtins
import logging
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ConfigDict, ValidationError

from bugstream.domain.catalog import CATALOG, EVENT_NAMES, EventName, EventType
from bugstream.domain.models import (
    BugReport,
    Comment,
    Entity,
    Membership,
    Notification,
    Project,
    User,
)

log = logging.getLogger("bugstream.client")


class RawPayload(Entity):
    """The payload of an event this SDK version cannot parse (a newer server's event type, or
    a payload that does not match its entity): every field is kept as an attribute."""

    model_config = ConfigDict(frozen=True, extra="allow")


EventPayload = BugReport | Comment | Project | User | Notification | Membership | RawPayload

#: The entity each event type's payload carries, as the catalog declares it.
ENTITY_FOR_TYPE: dict[EventType, type[Entity]] = {t: m.payload for t, m in CATALOG.items()}

E = TypeVar("E", bound=Entity)


@dataclass(frozen=True, slots=True)
class Event:
    """One event. `type` and `event` are the catalog's names (compare them with
    `EventType` / `EventName` or plain strings); `event_id` grows with commit order."""

    type: str
    event: str
    event_id: int
    payload: EventPayload
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        """`type.event`, e.g. `bug_report.created`."""
        return f"{self.type}.{self.event}"

    def payload_as(self, model: builtins.type[E]) -> E:
        """The payload as `model` (e.g. `BugReport`); `TypeError` if it is another entity."""
        if not isinstance(self.payload, model):
            raise TypeError(
                f"{self.name} carries a {type(self.payload).__name__}, not a {model.__name__}"
            )
        return self.payload

    def envelope(self) -> dict[str, Any]:
        """The message as the server sent it."""
        return {
            "type": self.type,
            "event": self.event,
            "payload": self.raw,
            "event_id": self.event_id,
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    """The server left out these events for a client that fell behind: each was superseded
    by a newer state of the same entity, which does arrive (docs/websocket.md)."""

    event_ids: tuple[int, ...]
    reason: str


def parse_event(message: dict[str, Any]) -> Event | None:
    """The `Event` in a server message, or None if the message is not an event."""
    event_id = message.get("event_id")
    kind = message.get("type")
    name = message.get("event")
    raw = message.get("payload")
    if (
        isinstance(event_id, bool)
        or not isinstance(event_id, int)
        or not isinstance(kind, str)
        or not isinstance(name, str)
    ):
        return None
    if not isinstance(raw, dict):
        raw = {}
    return Event(kind, name, event_id, _parse_payload(kind, name, raw), raw)


def _parse_payload(kind: str, name: str, raw: dict[str, Any]) -> EventPayload:
    model: type[Entity] | None = None
    try:
        event_type = EventType(kind)
        if EventName(name) in EVENT_NAMES[event_type]:
            model = ENTITY_FOR_TYPE[event_type]
    except ValueError:
        model = None
    if model is None:
        log.warning("unknown event %s.%s: kept as a raw payload (a newer server?)", kind, name)
        return RawPayload.model_validate(raw)
    try:
        entity = model.model_validate(raw)
    except ValidationError as exc:
        log.warning("%s.%s payload does not match %s: %s", kind, name, model.__name__, exc)
        return RawPayload.model_validate(raw)
    assert isinstance(entity, EventPayload)
    return entity


def check_event_filter(event_type: str | None, event: str | None) -> None:
    """Refuse handler filters that name no event of the catalog (a typo would never match)."""
    if event_type is None:
        if event is not None:
            raise ValueError("an event name needs its type, e.g. on('bug_report', 'created')")
        return
    try:
        known = EVENT_NAMES[EventType(event_type)]
    except ValueError:
        raise ValueError(
            f"unknown event type {event_type!r}; one of {[t.value for t in EventType]}"
        ) from None
    if event is not None and event not in known:
        raise ValueError(f"{event_type} has no event {event!r}; one of {[n.value for n in known]}")
