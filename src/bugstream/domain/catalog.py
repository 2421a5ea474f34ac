"""The event catalog: every event type and name, and what each one means.

One table says, per type: who may see its events (`Scope`), the entity its payload carries
and the fields every payload must have, and which field names the bug report it concerns (for
`subscribe` by bug report); per event: whether it changes who may see what (`changes_access`)
and whether a newer state of the same entity supersedes it (`conflates`). The hub's audience
and replay filter, conflation, subscriptions, the SDK's entity map and the AsyncAPI test all
read this table, so an event cannot be added without saying what it means: the catalog is
checked for completeness when it is imported (`check`), and a type that the hub does not
know how to route fails in mypy (`assert_never` over `Scope`), not at runtime.

The 20 events of the spec are `SPEC_EVENTS`. bugstream adds one type of its own, `membership`
(`added`, `removed`), because membership changes decide who may see a project's events and the
gateway must learn of them on the same ordered path as everything else (docs/design.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from bugstream.domain.models import (
    BugReport,
    Comment,
    Entity,
    Membership,
    Notification,
    Project,
    User,
)


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


class Scope(StrEnum):
    """Who may see an event (subscriptions narrow it further)."""

    #: the members of the event's project (`Event.project_id`), and admins
    PROJECT = "project"
    #: only the user the event names (`Event.user_id`): never narrowed by a subscription
    PERSONAL = "personal"
    #: the user the event is about (`Event.user_id`), and admins: never narrowed either
    USER = "user"


@dataclass(frozen=True, slots=True)
class EventMeaning:
    #: it changes who may see what (membership, a project's deletion, a user's role or status):
    #: the gateway applies it to its access records, in order with delivery
    changes_access: bool = False
    #: it carries its entity's whole new state: for a client that fell behind, a newer event of
    #: the same entity (payload "id") supersedes it (docs/websocket.md, "Slow clients")
    conflates: bool = False


@dataclass(frozen=True, slots=True)
class TypeMeaning:
    scope: Scope
    #: the entity the payload carries (the SDK parses it into this model)
    payload: type[Entity]
    #: the fields every payload of this type must carry (the spec's list for the type)
    required: tuple[str, ...]
    events: Mapping[EventName, EventMeaning]
    #: the payload field naming the bug report the event concerns, for `subscribe` by bug
    bug_report_field: str | None = None


_STATE = EventMeaning(conflates=True)
_PLAIN = EventMeaning()
_ACCESS = EventMeaning(changes_access=True)
_ACCESS_STATE = EventMeaning(changes_access=True, conflates=True)

CATALOG: Mapping[EventType, TypeMeaning] = MappingProxyType(
    {
        EventType.BUG_REPORT: TypeMeaning(
            scope=Scope.PROJECT,
            payload=BugReport,
            required=(
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
            events={
                EventName.CREATED: _PLAIN,
                EventName.UPDATED: _STATE,
                EventName.DELETED: _PLAIN,
                EventName.STATUS_CHANGED: _STATE,
                EventName.ASSIGNED: _STATE,
                EventName.UNASSIGNED: _STATE,
            },
            bug_report_field="id",
        ),
        EventType.COMMENT: TypeMeaning(
            scope=Scope.PROJECT,
            payload=Comment,
            required=("id", "bug_report_id", "user_id", "content", "created_at", "updated_at"),
            events={
                EventName.CREATED: _PLAIN,
                EventName.UPDATED: _STATE,
                EventName.DELETED: _PLAIN,
            },
            bug_report_field="bug_report_id",
        ),
        EventType.PROJECT: TypeMeaning(
            scope=Scope.PROJECT,
            payload=Project,
            required=("id", "name", "description", "created_at", "updated_at"),
            events={
                EventName.CREATED: _PLAIN,
                EventName.UPDATED: _STATE,
                EventName.DELETED: _ACCESS,  # its members lose it
            },
        ),
        EventType.USER: TypeMeaning(
            scope=Scope.USER,
            payload=User,
            required=("id", "username", "email", "role", "status", "created_at", "updated_at"),
            events={
                EventName.CREATED: _ACCESS,
                EventName.UPDATED: _ACCESS_STATE,  # a role change widens or narrows access
                EventName.DELETED: _ACCESS,
                EventName.STATUS_CHANGED: _ACCESS_STATE,  # not active: disconnected
            },
        ),
        EventType.NOTIFICATION: TypeMeaning(
            scope=Scope.PERSONAL,
            payload=Notification,
            required=("id", "type", "user_id", "message", "read", "created_at"),
            events={
                EventName.BUG_ASSIGNED: _PLAIN,
                EventName.COMMENT_ADDED: _PLAIN,
                EventName.STATUS_CHANGED: _PLAIN,
                EventName.REMINDER_SENT: _PLAIN,
            },
        ),
        EventType.MEMBERSHIP: TypeMeaning(
            scope=Scope.PROJECT,
            payload=Membership,
            required=("project_id", "user_id", "created_at"),
            events={EventName.ADDED: _ACCESS, EventName.REMOVED: _ACCESS},
        ),
    }
)


def meaning(event_type: EventType, name: EventName) -> EventMeaning:
    """The meaning of one event; KeyError for a pair the catalog does not have."""
    return CATALOG[event_type].events[name]


EVENT_NAMES: Mapping[EventType, tuple[EventName, ...]] = MappingProxyType(
    {event_type: tuple(m.events) for event_type, m in CATALOG.items()}
)
REQUIRED_PAYLOAD_FIELDS: Mapping[EventType, tuple[str, ...]] = MappingProxyType(
    {event_type: m.required for event_type, m in CATALOG.items()}
)
#: (type, event) pairs whose newer state supersedes an older one of the same entity
CONFLATABLE: frozenset[tuple[EventType, EventName]] = frozenset(
    (t, n) for t, m in CATALOG.items() for n, e in m.events.items() if e.conflates
)
#: (type, event) pairs that change who may see what
ACCESS_CHANGING: frozenset[tuple[EventType, EventName]] = frozenset(
    (t, n) for t, m in CATALOG.items() for n, e in m.events.items() if e.changes_access
)

#: The spec's 20 (type, event) pairs (6 + 3 + 3 + 4 + 4).
SPEC_EVENTS: tuple[tuple[EventType, EventName], ...] = tuple(
    (event_type, name)
    for event_type, names in EVENT_NAMES.items()
    if event_type is not EventType.MEMBERSHIP
    for name in names
)


def is_known_event(event_type: str, event: str) -> bool:
    try:
        return EventName(event) in CATALOG[EventType(event_type)].events
    except ValueError:
        return False


def check(catalog: Mapping[EventType, TypeMeaning]) -> None:
    """Every type has a meaning, every name is used, and each required field is one the
    payload's entity has: a half-declared event fails at import, not in production."""
    missing = set(EventType) - set(catalog)
    if missing:
        raise RuntimeError(f"event types without a meaning in the catalog: {sorted(missing)}")
    unused = set(EventName) - {n for m in catalog.values() for n in m.events}
    if unused:
        raise RuntimeError(f"event names no type uses: {sorted(unused)}")
    for event_type, m in catalog.items():
        fields = set(m.payload.model_fields)
        unknown = set(m.required) - fields
        if unknown:
            raise RuntimeError(f"{event_type}: required fields {unknown} not on {m.payload}")
        if m.bug_report_field is not None and m.bug_report_field not in m.required:
            raise RuntimeError(f"{event_type}: {m.bug_report_field!r} is not a required field")


check(CATALOG)
