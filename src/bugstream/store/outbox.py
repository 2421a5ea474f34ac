"""The transactional outbox: events are rows written in the same transaction as the change.

Contract:
- `OutboxWriter.emit` adds an event to the caller's open transaction; `flush` writes them
  all as the transaction's last statement, just before it commits (`Database.transaction`).
  If the transaction rolls back, the events never existed; if it commits, they are there.
- Event ids are monotonic *in commit order*. On SQLite a write transaction holds the database
  lock, so this is given. On PostgreSQL two transactions could take ids 7 and 8 and commit 8
  first; a reader that had already moved past 8 would then never see 7 (the classic outbox
  trap). To rule it out, the statement that inserts a transaction's events first takes one
  transaction-level advisory lock, held until the commit: ids are allocated and committed one
  transaction at a time, but only for the last statement and the commit, not for the whole
  transaction (the lock used to be taken at the start, and serialized every write from its
  first statement; docs/design.md, "Commit order on PostgreSQL"). Holding it while inserting
  only into `outbox`, which references nothing, a writer never waits for a row lock while
  others wait for it: no deadlock with row locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bugstream.domain.events import Event, EventName, EventType, PendingEvent
from bugstream.store.tables import outbox
from bugstream.store.types import utcnow

#: Key of the advisory lock that orders outbox writers on PostgreSQL ("bugstrm" in ASCII).
OUTBOX_LOCK_KEY = 0x627567737472_6D

# PostgreSQL: take the lock, then insert every event of the transaction in one round trip.
# The MATERIALIZED lock is read before any row reaches the insert (the sort needs every row
# first), so no id is allocated before the lock is held; ids follow `ord`.
_PG_LOCKED_INSERT = text(
    """
    WITH lock AS MATERIALIZED (SELECT pg_advisory_xact_lock(:key))
    INSERT INTO outbox (type, event, payload, project_id, user_id, created_at)
    SELECT e.type, e.event, e.payload, e.project_id, e.user_id, e.created_at
    FROM lock, jsonb_to_recordset(CAST(:rows AS jsonb)) AS e(
        ord int, type text, event text, payload jsonb, project_id bigint, user_id bigint,
        created_at timestamptz
    )
    ORDER BY e.ord
    RETURNING id
    """
)


class OutboxWriter:
    """The events of one transaction; `events` lists them, with their ids, after `flush`."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._pending: list[PendingEvent] = []
        self.events: list[Event] = []

    async def emit(self, pending: PendingEvent) -> None:
        """Add an event; it is written, with the others, when the transaction commits."""
        self._pending.append(pending)

    def mark(self) -> int:
        """Where the events emitted so far end (for `forget_after`, with a savepoint)."""
        return len(self._pending)

    def forget_after(self, mark: int) -> None:
        """Drop the events emitted after `mark` (their savepoint was rolled back)."""
        del self._pending[mark:]

    async def flush(self) -> None:
        """Write the events emitted so far (in order); the last statement before COMMIT."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        created_at = utcnow()
        if self._conn.dialect.name == "postgresql":
            rows = [
                {
                    "ord": i,
                    "type": p.type.value,
                    "event": p.event.value,
                    "payload": p.payload,
                    "project_id": p.project_id,
                    "user_id": p.user_id,
                    "created_at": created_at.isoformat(),
                }
                for i, p in enumerate(pending)
            ]
            result = await self._conn.execute(
                _PG_LOCKED_INSERT, {"key": OUTBOX_LOCK_KEY, "rows": orjson.dumps(rows).decode()}
            )
            # Allocated in `ord` order: ascending ids are the events in emit order.
            ids = sorted(int(row.id) for row in result)
        else:
            ids = [
                int((await self._conn.execute(_INSERT, _values(p, created_at))).scalar_one())
                for p in pending
            ]
        committed_at = created_at.timestamp()
        self.events.extend(
            Event(
                event_id=event_id,
                type=p.type,
                event=p.event,
                payload=p.payload,
                project_id=p.project_id,
                user_id=p.user_id,
                committed_at=committed_at,
            )
            for event_id, p in zip(ids, pending, strict=True)
        )


def _values(pending: PendingEvent, created_at: Any) -> dict[str, Any]:
    return {
        "type": pending.type.value,
        "event": pending.event.value,
        "payload": pending.payload,
        "project_id": pending.project_id,
        "user_id": pending.user_id,
        "created_at": created_at,
    }


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
