"""The transactional outbox: events are rows written in the same transaction as the change.

Contract:
- `OutboxWriter.emit` inserts one event row inside the caller's open transaction; if that
  transaction rolls back, the event never existed, and if it commits, the event is there.
- Event ids are monotonic *in commit order*. On SQLite a write transaction holds the database
  lock, so this is given. On PostgreSQL two transactions could take ids 7 and 8 and commit 8
  first; a reader that had already moved past 8 would then never see 7 (the classic outbox
  trap). To rule it out, every write transaction takes one transaction-level advisory lock at
  its start (`Database.transaction`), held until it commits: ids are allocated and committed
  one transaction at a time. (`emit` takes it too, for transactions opened elsewhere; taking it
  again is free.) Taking it at the start avoids a deadlock with row locks (docs/design.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bugstream.domain.events import Event, EventName, EventType, PendingEvent
from bugstream.store.tables import outbox
from bugstream.store.types import utcnow

#: Key of the advisory lock that orders outbox writers on PostgreSQL ("bugstrm" in ASCII).
OUTBOX_LOCK_KEY = 0x627567737472_6D


class OutboxWriter:
    """Writes the events of one transaction; `events` lists them, in order, after each emit."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._locked = False
        self.events: list[Event] = []

    async def emit(self, pending: PendingEvent) -> Event:
        if not self._locked and self._conn.dialect.name == "postgresql":
            await self._conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": OUTBOX_LOCK_KEY}
            )
            self._locked = True
        created_at = utcnow()
        event_id = (
            await self._conn.execute(
                _INSERT,
                {
                    "type": pending.type.value,
                    "event": pending.event.value,
                    "payload": pending.payload,
                    "project_id": pending.project_id,
                    "user_id": pending.user_id,
                    "created_at": created_at,
                },
            )
        ).scalar_one()
        event = Event(
            event_id=int(event_id),
            type=pending.type,
            event=pending.event,
            payload=pending.payload,
            project_id=pending.project_id,
            user_id=pending.user_id,
            committed_at=created_at.timestamp(),
        )
        self.events.append(event)
        return event


def row_to_event(row: Any) -> Event:
    return Event(
        event_id=int(row.id),
        type=EventType(row.type),
        event=EventName(row.event),
        payload=dict(row.payload),
        project_id=row.project_id,
        user_id=row.user_id,
        committed_at=row.created_at.timestamp(),
    )


# Built once (building a statement costs more than running it on SQLite).
_INSERT = insert(outbox).returning(outbox.c.id)
_AFTER = (
    select(outbox)
    .where(outbox.c.id > bindparam("after_id"))
    .order_by(outbox.c.id)
    .limit(bindparam("limit"))
)
_LATEST = select(func.max(outbox.c.id))


async def read_events_after(
    conn: AsyncConnection, after_id: int, limit: int = 1000
) -> Sequence[Event]:
    """Committed events with id > `after_id`, oldest first."""
    rows = await conn.execute(_AFTER, {"after_id": after_id, "limit": limit})
    return [row_to_event(r) for r in rows]


async def latest_event_id(conn: AsyncConnection) -> int:
    value = (await conn.execute(_LATEST)).scalar_one_or_none()
    return int(value or 0)
