"""Reading what an action wrote to the outbox, and checking it against the event catalog.

Typical use::

    mark = await last_event_id(ctx)
    result = await bugs.update_bug(ctx, actor, bug.id, data)
    events = await written_by(ctx, result, mark)   # == result.events, each well formed
    assert kinds(events) == [("bug_report", "updated")]

and, for an action that must fail without a trace::

    async with writes_nothing(ctx):
        with pytest.raises(Forbidden):
            await projects.create_project(ctx, developer, data)
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select

from bugstream.domain.enums import NotificationType
from bugstream.domain.events import REQUIRED_PAYLOAD_FIELDS, Event, EventType
from bugstream.domain.models import BugReport, Entity, Notification, PageRequest, User
from bugstream.services import notifications
from bugstream.services.context import Actor, Result, ServiceContext
from bugstream.store.outbox import latest_event_id, read_events_after
from bugstream.store.tables import (
    bug_reports,
    comments,
    memberships,
    outbox,
    projects,
    users,
)
from bugstream.store.tables import (
    notifications as notifications_table,
)

#: UTC, ISO 8601, with `Z` (the architecture's convention for every time on the wire).
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")

#: Every table an action may write; a failed action must leave all of them as they were.
STATE_TABLES: tuple[Table, ...] = (
    users,
    projects,
    memberships,
    bug_reports,
    comments,
    notifications_table,
    outbox,
)

Kind = tuple[str, str]


async def last_event_id(ctx: ServiceContext) -> int:
    """The id of the newest committed event (0 when there is none): mark this before acting."""
    async with ctx.db.read() as repos:
        return await latest_event_id(repos.conn)


async def events_since(ctx: ServiceContext, after_id: int) -> list[Event]:
    """Committed events with an id above `after_id`, oldest first."""
    async with ctx.db.read() as repos:
        return list(await read_events_after(repos.conn, after_id))


def kinds(events: Sequence[Event]) -> list[Kind]:
    """`(type, event)` of each event, e.g. `[("bug_report", "assigned"), ...]`."""
    return [(e.type.value, e.event.value) for e in events]


def parse_time(value: Any) -> datetime:
    assert isinstance(value, str) and ISO_UTC.match(value), f"not ISO 8601 UTC with Z: {value!r}"
    return datetime.fromisoformat(value)


def expected_routing(event: Event) -> tuple[int | None, int | None]:
    """The `(project_id, user_id)` routing keys an event of this type must carry."""
    p = event.payload
    match event.type:
        case EventType.BUG_REPORT | EventType.COMMENT:
            return p["project_id"], None
        case EventType.PROJECT:
            return p["id"], None
        case EventType.USER:
            return None, p["id"]
        case EventType.NOTIFICATION:
            return None, p["user_id"]
        case EventType.MEMBERSHIP:
            return p["project_id"], p["user_id"]
    raise AssertionError(f"unknown event type {event.type}")


def check_event(event: Event) -> None:
    """One event is well formed: every required payload field, times in UTC with `Z`, ids,
    and the routing keys its type calls for."""
    missing = [f for f in REQUIRED_PAYLOAD_FIELDS[event.type] if f not in event.payload]
    assert not missing, f"{event.type}.{event.event} payload lacks {missing}"
    for name in ("created_at", "updated_at"):
        if name in event.payload:
            parse_time(event.payload[name])
    if "id" in event.payload:
        assert isinstance(event.payload["id"], int) and event.payload["id"] > 0
    assert (event.project_id, event.user_id) == expected_routing(event), event
    envelope = event.envelope()
    assert set(envelope) == {"type", "event", "payload", "event_id"}
    assert envelope["event_id"] == event.event_id


def check_events(events: Sequence[Event]) -> None:
    """Every event well formed, and event ids strictly increasing."""
    for event in events:
        check_event(event)
    ids = [e.event_id for e in events]
    assert all(a < b for a, b in itertools.pairwise(ids)), ids


async def written_by(ctx: ServiceContext, result: Result[Any], after_id: int) -> list[Event]:
    """What the action committed since `after_id`: exactly what its `Result.events` reports,
    all of it well formed."""
    events = await events_since(ctx, after_id)
    assert tuple(events) == result.events, (kinds(events), kinds(result.events))
    check_events(events)
    if events:
        assert events[0].event_id > after_id
    return events


def assert_payload(event: Event, entity: Entity, **extra: Any) -> None:
    """The payload is the entity's state (plus `extra` fields), value for value."""
    assert event.payload == {**entity.to_payload(), **extra}


async def snapshot(ctx: ServiceContext) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table an action can write, in key order."""
    state: dict[str, list[tuple[Any, ...]]] = {}
    async with ctx.db.read() as repos:
        for table in STATE_TABLES:
            rows = await repos.conn.execute(select(table).order_by(*table.primary_key.columns))
            state[table.name] = [tuple(r) for r in rows]
    return state


@asynccontextmanager
async def writes_nothing(
    ctx: ServiceContext, *, except_tables: Collection[str] = ()
) -> AsyncIterator[None]:
    """Assert that the block leaves every table (outbox included) exactly as it found it,
    but for `except_tables` (e.g. `bug_reports`, whose internal `reminded_at` a sweep sets)."""
    before = await snapshot(ctx)
    yield
    after = await snapshot(ctx)
    for name, rows in before.items():
        if name not in except_tables:
            assert after[name] == rows, f"table {name} changed"


async def notifications_of(ctx: ServiceContext, user: User) -> list[Notification]:
    """The user's notifications, as they would list them."""
    actor = Actor(user_id=user.id, role=user.role)
    page = await notifications.list_notifications(ctx, actor, PageRequest(limit=200))
    return page.items


async def assert_notified(
    ctx: ServiceContext,
    event: Event,
    recipient: User,
    kind: NotificationType,
    bug: BugReport,
) -> Notification:
    """`event` announces a new, unread `kind` notification about `bug` for `recipient`, and the
    recipient's notification list holds that very notification."""
    assert (event.type, event.event.value) == (EventType.NOTIFICATION, kind.value)
    assert event.user_id == recipient.id
    mine = {n.id: n for n in await notifications_of(ctx, recipient)}
    assert event.payload["id"] in mine, "the event's notification is not in the user's list"
    row = mine[event.payload["id"]]
    assert row.to_payload() == event.payload
    assert row.type is kind
    assert row.user_id == recipient.id
    assert row.bug_report_id == bug.id
    assert row.read is False
    assert row.message
    assert f"#{bug.id}" in row.message
    return row
