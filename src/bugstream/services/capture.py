"""Database change capture: rows changed by other programs become the API's own events.

PostgreSQL triggers (migration 0002) record each outside change in `captured_changes`; this
worker turns them, in order, into exactly the events (and notifications) the API writes for
the same change, with the same payloads and audiences, then deletes the records, all in one
transaction. Deletes that cascaded from a parent deleted in the same transaction are folded
into the parent's event, as the API does (one `project.deleted`, not one per bug).

Only one worker runs at a time across all instances (a transaction-level advisory lock), so
events keep the order of the changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, or_, select, text

from bugstream.background import BackgroundLoop
from bugstream.domain.enums import NotificationType
from bugstream.domain.events import EventName, PendingEvent
from bugstream.domain.models import BugReport, Comment, Membership, Project, User
from bugstream.services.context import ServiceContext
from bugstream.services.events import (
    bug_event,
    comment_event,
    membership_event,
    project_event,
    user_event,
)
from bugstream.services.notifications import notify
from bugstream.services.projects import member_removed
from bugstream.store.database import Transaction
from bugstream.store.tables import captured_changes

log = logging.getLogger(__name__)

#: Advisory lock key that lets one capture worker run at a time ("bugscap").
CAPTURE_LOCK_KEY = 0x62756773636170

_USER_FIELDS = ("username", "email", "role")
_BUG_FIELDS = ("title", "description", "priority")


class Change:
    __slots__ = ("new", "old", "op", "table", "txid")

    def __init__(self, row: Any) -> None:
        self.txid: int = int(row.txid)
        self.table: str = row.table_name
        self.op: str = row.op
        self.old: dict[str, Any] | None = row.old_row
        self.new: dict[str, Any] | None = row.new_row


def _changed(change: Change, fields: tuple[str, ...]) -> bool:
    assert change.old is not None and change.new is not None
    return any(change.old.get(f) != change.new.get(f) for f in fields)


def _cascaded(change: Change, deleted: dict[str, set[int]]) -> bool:
    """A delete caused by its parent's delete in the same transaction."""
    if change.op != "DELETE" or change.old is None:
        return False
    old = change.old
    if change.table == "bug_reports":
        return old["project_id"] in deleted["projects"]
    if change.table == "comments":
        return old["bug_report_id"] in deleted["bug_reports"]
    if change.table == "memberships":
        return old["project_id"] in deleted["projects"] or old["user_id"] in deleted["users"]
    return False


async def _project_of_bug(tx: Transaction, bug_id: int, fallback: dict[str, int]) -> int | None:
    bug = await tx.bugs.get(bug_id)
    if bug is not None:
        return bug.project_id
    return fallback.get(str(bug_id))


async def _events_for(
    ctx: ServiceContext, tx: Transaction, change: Change, deleted_bugs: dict[str, int]
) -> None:
    emit: Callable[[PendingEvent], Any] = tx.outbox.emit
    table, op, old, new = change.table, change.op, change.old, change.new
    if table == "users":
        if op == "INSERT":
            await emit(user_event(EventName.CREATED, User.model_validate(new)))
        elif op == "DELETE":
            await emit(user_event(EventName.DELETED, User.model_validate(old)))
        else:
            assert old is not None and new is not None
            user = User.model_validate(new)
            if old["status"] != new["status"]:
                await emit(
                    user_event(EventName.STATUS_CHANGED, user, previous_status=old["status"])
                )
            if _changed(change, _USER_FIELDS):
                await emit(user_event(EventName.UPDATED, user))
    elif table == "projects":
        name = {"INSERT": EventName.CREATED, "UPDATE": EventName.UPDATED}.get(op, EventName.DELETED)
        row = old if op == "DELETE" else new
        if op != "UPDATE" or _changed(change, ("name", "description")):
            await emit(project_event(name, Project.model_validate(row)))
    elif table == "memberships":
        if op == "INSERT":
            await emit(membership_event(EventName.ADDED, Membership.model_validate(new)))
        elif op == "DELETE":
            # As the API does it: their bugs in the project unassigned first (same function).
            await member_removed(ctx, tx, Membership.model_validate(old))
    elif table == "bug_reports":
        await _bug_events(ctx, tx, change)
    elif table == "comments":
        row = new if op != "DELETE" else old
        assert row is not None
        comment = Comment.model_validate(row)
        project_id = await _project_of_bug(tx, comment.bug_report_id, deleted_bugs)
        if project_id is None:
            return
        if op == "INSERT":
            await emit(comment_event(EventName.CREATED, comment, project_id))
            bug = await tx.bugs.get(comment.bug_report_id)
            if bug is not None:
                await _notify_if_present(
                    ctx,
                    tx,
                    NotificationType.COMMENT_ADDED,
                    bug,
                    [bug.reporter_id, bug.assignee_id],
                    actor_id=comment.user_id,
                )
        elif op == "DELETE":
            await emit(comment_event(EventName.DELETED, comment, project_id))
        elif _changed(change, ("content",)):
            await emit(comment_event(EventName.UPDATED, comment, project_id))


async def _notify_if_present(
    ctx: ServiceContext,
    tx: Transaction,
    kind: NotificationType,
    bug: BugReport,
    recipients: list[int | None],
    actor_id: int | None = None,
) -> None:
    """Notify, unless the bug (or a recipient) is already gone again: a notification points
    at its bug, and a change processed late may be about a row deleted since."""
    if await tx.bugs.get(bug.id) is None:
        return
    present = [r for r in recipients if r is not None and await tx.users.get(r) is not None]
    await notify(ctx, tx, kind, bug, present, actor_id=actor_id)


async def _bug_events(ctx: ServiceContext, tx: Transaction, change: Change) -> None:
    emit = tx.outbox.emit
    op, old, new = change.op, change.old, change.new
    if op == "INSERT":
        bug = BugReport.model_validate(new)
        await emit(bug_event(EventName.CREATED, bug))
        await _notify_if_present(ctx, tx, NotificationType.BUG_ASSIGNED, bug, [bug.assignee_id])
        return
    if op == "DELETE":
        await emit(bug_event(EventName.DELETED, BugReport.model_validate(old)))
        return
    assert old is not None and new is not None
    bug = BugReport.model_validate(new)
    if _changed(change, _BUG_FIELDS):
        await emit(bug_event(EventName.UPDATED, bug))
    if old["status"] != new["status"]:
        await emit(bug_event(EventName.STATUS_CHANGED, bug, previous_status=old["status"]))
        await _notify_if_present(
            ctx, tx, NotificationType.STATUS_CHANGED, bug, [bug.reporter_id, bug.assignee_id]
        )
    if old["assignee_id"] != new["assignee_id"]:
        previous = old["assignee_id"]
        if new["assignee_id"] is None:
            await emit(bug_event(EventName.UNASSIGNED, bug, previous_assignee_id=previous))
        else:
            await emit(bug_event(EventName.ASSIGNED, bug, previous_assignee_id=previous))
            await _notify_if_present(ctx, tx, NotificationType.BUG_ASSIGNED, bug, [bug.assignee_id])


def _user_deletes_last(changes: list[Change]) -> list[Change]:
    """The changes in order, except that a user's deletion moves after the other changes of
    its transaction: PostgreSQL records the `ON DELETE SET NULL` on their bugs after the
    delete, while the API emits the unassignments first, then `user.deleted`. Clients see
    the same order either way."""
    last_of_tx = {change.txid: i for i, change in enumerate(changes)}
    deferred: dict[int, list[Change]] = {}
    ordered: list[Change] = []
    for i, change in enumerate(changes):
        if change.table == "users" and change.op == "DELETE":
            deferred.setdefault(change.txid, []).append(change)
        else:
            ordered.append(change)
        if last_of_tx[change.txid] == i:
            ordered.extend(deferred.pop(change.txid, []))
    return ordered


async def process_captured_changes(ctx: ServiceContext, *, batch: int = 500) -> int:
    """Turn pending captured changes into events; the number of changes processed."""
    total = 0
    while True:
        async with ctx.db.transaction() as tx:
            got_lock = (
                await tx.conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": CAPTURE_LOCK_KEY}
                )
            ).scalar_one()
            if not got_lock:
                return total  # another instance is on it
            rows = (
                await tx.conn.execute(
                    select(captured_changes).order_by(captured_changes.c.id).limit(batch)
                )
            ).all()
            if not rows:
                return total
            last_in_batch = rows[-1].id
            # A batch ends at transaction boundaries: cascade folding and delete ordering look
            # at a transaction's changes together, so every change of the transactions in the
            # batch comes with it (they committed together: all are visible).
            extra = (
                (
                    await tx.conn.execute(
                        select(captured_changes)
                        .where(
                            captured_changes.c.id > last_in_batch,
                            captured_changes.c.txid.in_({row.txid for row in rows}),
                        )
                        .order_by(captured_changes.c.id)
                    )
                ).all()
                if len(rows) == batch
                else []
            )
            changes = _user_deletes_last([Change(row) for row in [*rows, *extra]])
            deleted: dict[int, dict[str, set[int]]] = {}
            deleted_bugs: dict[str, int] = {}
            for change in changes:
                if change.op == "DELETE" and change.old is not None:
                    by_table = deleted.setdefault(
                        change.txid, {"projects": set(), "bug_reports": set(), "users": set()}
                    )
                    if change.table in by_table:
                        by_table[change.table].add(int(change.old["id"]))
                    if change.table == "bug_reports":
                        deleted_bugs[str(change.old["id"])] = int(change.old["project_id"])
            for change in changes:
                empty: dict[str, set[int]] = {
                    "projects": set(),
                    "bug_reports": set(),
                    "users": set(),
                }
                if _cascaded(change, deleted.get(change.txid, empty)):
                    continue
                try:
                    async with tx.savepoint():
                        await _events_for(ctx, tx, change, deleted_bugs)
                except Exception:
                    # One malformed change must not block every later one.
                    log.exception("skipped captured change on %s (%s)", change.table, change.op)
            await tx.conn.execute(
                delete(captured_changes).where(
                    or_(
                        captured_changes.c.id <= last_in_batch,
                        captured_changes.c.id.in_([row.id for row in extra]),
                    )
                )
            )
        total += len(rows)
        if len(rows) < batch:
            return total


class CaptureWorker(BackgroundLoop):
    """Runs `process_captured_changes` when woken (NOTIFY) and every `interval` seconds."""

    def __init__(self, ctx: ServiceContext, *, interval: float = 1.0) -> None:
        super().__init__(
            "bugstream-capture",
            self._process,
            interval=interval,
            log=log,
            failure="change capture failed; retrying",
        )
        self._ctx = ctx

    async def _process(self) -> None:
        processed = await process_captured_changes(self._ctx)
        if processed:
            log.info("captured %d outside changes", processed)
