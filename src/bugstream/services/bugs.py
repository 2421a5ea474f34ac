"""Bug reports: create, edit, move through statuses, assign, delete, read."""

from __future__ import annotations

from typing import Any

from bugstream.domain.enums import NotificationType, UserStatus
from bugstream.domain.errors import NotFound, field_conflict
from bugstream.domain.events import EventName
from bugstream.domain.models import (
    BugAssign,
    BugCreate,
    BugFilter,
    BugReport,
    BugStatusChange,
    BugUpdate,
    Page,
    PageRequest,
)
from bugstream.domain.permissions import Action, sees_all_projects
from bugstream.services.access import require, require_visible
from bugstream.services.context import Actor, Result, ServiceContext
from bugstream.services.events import bug_event
from bugstream.services.notifications import notify
from bugstream.store.database import Transaction
from bugstream.store.tables import bug_reports


async def _get_bug(tx: Transaction, actor: Actor, bug_id: int) -> BugReport:
    bug = await tx.bugs.get(bug_id, for_update=True)
    if bug is None:
        raise NotFound("bug report not found")
    await require_visible(tx.members, actor, bug.project_id, "bug report")
    return bug


async def _check_assignee(tx: Transaction, project_id: int, assignee_id: int) -> None:
    """An assignee must be an active member of the bug's project."""
    user = await tx.users.get(assignee_id)
    if user is None:
        raise field_conflict("assignee_id", "exists", "no such user")
    if user.status is not UserStatus.ACTIVE:
        raise field_conflict("assignee_id", "active", "user is not active")
    if not await tx.members.is_member(project_id, assignee_id):
        raise field_conflict("assignee_id", "project_member", "user is not a member of the project")


async def create_bug(ctx: ServiceContext, actor: Actor, data: BugCreate) -> Result[BugReport]:
    """Report a bug. With an assignee, the assignee is notified (`bug_assigned`)."""
    async with ctx.db.transaction() as tx:
        if not await tx.projects.exists(data.project_id):
            raise NotFound("project not found")
        await require(
            tx.members, actor, Action.BUG_CREATE, project_id=data.project_id, what="project"
        )
        if data.assignee_id is not None:
            await require(tx.members, actor, Action.BUG_ASSIGN, project_id=data.project_id)
            await _check_assignee(tx, data.project_id, data.assignee_id)
        now = ctx.clock()
        bug = await tx.bugs.insert(
            {
                "project_id": data.project_id,
                "title": data.title,
                "description": data.description,
                "status": "open",
                "priority": data.priority.value,
                "assignee_id": data.assignee_id,
                "reporter_id": actor.user_id,
                "created_at": now,
                "updated_at": now,
            }
        )
        await tx.outbox.emit(bug_event(EventName.CREATED, bug))
        await notify(
            ctx, tx, NotificationType.BUG_ASSIGNED, bug, [bug.assignee_id], actor_id=actor.user_id
        )
    return Result(bug, tuple(tx.outbox.events))


async def update_bug(
    ctx: ServiceContext, actor: Actor, bug_id: int, data: BugUpdate
) -> Result[BugReport]:
    """Edit title, description or priority. A change that changes nothing writes no event."""
    async with ctx.db.transaction() as tx:
        bug = await _get_bug(tx, actor, bug_id)
        await require(
            tx.members,
            actor,
            Action.BUG_UPDATE,
            project_id=bug.project_id,
            owner_id=bug.reporter_id,
        )
        values: dict[str, Any] = {
            k: v for k, v in data.model_dump(exclude_none=True).items() if getattr(bug, k) != v
        }
        if not values:
            return Result(bug)
        values["updated_at"] = ctx.clock()
        updated = await tx.bugs.update(bug_id, values)
        assert updated is not None
        await tx.outbox.emit(bug_event(EventName.UPDATED, updated))
    return Result(updated, tuple(tx.outbox.events))


async def change_bug_status(
    ctx: ServiceContext, actor: Actor, bug_id: int, data: BugStatusChange
) -> Result[BugReport]:
    """Move a bug to another status; reporter and assignee (not the actor) are notified."""
    async with ctx.db.transaction() as tx:
        bug = await _get_bug(tx, actor, bug_id)
        await require(tx.members, actor, Action.BUG_CHANGE_STATUS, project_id=bug.project_id)
        if bug.status is data.status:
            return Result(bug)
        updated = await tx.bugs.update(
            bug_id, {"status": data.status.value, "updated_at": ctx.clock()}
        )
        assert updated is not None
        await tx.outbox.emit(
            bug_event(EventName.STATUS_CHANGED, updated, previous_status=bug.status.value)
        )
        await notify(
            ctx,
            tx,
            NotificationType.STATUS_CHANGED,
            updated,
            [updated.reporter_id, updated.assignee_id],
            actor_id=actor.user_id,
        )
    return Result(updated, tuple(tx.outbox.events))


async def assign_bug(
    ctx: ServiceContext, actor: Actor, bug_id: int, data: BugAssign
) -> Result[BugReport]:
    """Assign (or re-assign) a bug; the new assignee is notified unless they assigned it."""
    async with ctx.db.transaction() as tx:
        bug = await _get_bug(tx, actor, bug_id)
        await require(tx.members, actor, Action.BUG_ASSIGN, project_id=bug.project_id)
        if bug.assignee_id == data.assignee_id:
            return Result(bug)
        await _check_assignee(tx, bug.project_id, data.assignee_id)
        updated = await tx.bugs.update(
            bug_id, {"assignee_id": data.assignee_id, "updated_at": ctx.clock()}
        )
        assert updated is not None
        await tx.outbox.emit(
            bug_event(EventName.ASSIGNED, updated, previous_assignee_id=bug.assignee_id)
        )
        await notify(
            ctx,
            tx,
            NotificationType.BUG_ASSIGNED,
            updated,
            [data.assignee_id],
            actor_id=actor.user_id,
        )
    return Result(updated, tuple(tx.outbox.events))


async def _unassign(ctx: ServiceContext, tx: Transaction, bug: BugReport) -> BugReport:
    updated = await tx.bugs.update(bug.id, {"assignee_id": None, "updated_at": ctx.clock()})
    assert updated is not None
    await tx.outbox.emit(
        bug_event(EventName.UNASSIGNED, updated, previous_assignee_id=bug.assignee_id)
    )
    return updated


async def unassign_bug(ctx: ServiceContext, actor: Actor, bug_id: int) -> Result[BugReport]:
    async with ctx.db.transaction() as tx:
        bug = await _get_bug(tx, actor, bug_id)
        await require(tx.members, actor, Action.BUG_ASSIGN, project_id=bug.project_id)
        if bug.assignee_id is None:
            return Result(bug)
        updated = await _unassign(ctx, tx, bug)
    return Result(updated, tuple(tx.outbox.events))


async def unassign_all_of(
    ctx: ServiceContext, tx: Transaction, user_id: int, *, project_id: int | None = None
) -> None:
    """Unassign every bug assigned to `user_id` (in `project_id`, if given), with events:
    before deleting the user, or removing them from the project."""
    for bug in await tx.bugs.assigned_to(user_id):
        if project_id is None or bug.project_id == project_id:
            await _unassign(ctx, tx, bug)


async def delete_bug(ctx: ServiceContext, actor: Actor, bug_id: int) -> Result[BugReport]:
    """Delete a bug and its comments; the event carries the bug's last state."""
    async with ctx.db.transaction() as tx:
        bug = await _get_bug(tx, actor, bug_id)
        await require(tx.members, actor, Action.BUG_DELETE, project_id=bug.project_id)
        await tx.bugs.delete(bug_id)
        await tx.outbox.emit(bug_event(EventName.DELETED, bug))
    return Result(bug, tuple(tx.outbox.events))


async def get_bug(ctx: ServiceContext, actor: Actor, bug_id: int) -> BugReport:
    async with ctx.db.read() as repos:
        bug = await repos.bugs.get(bug_id)
        if bug is None:
            raise NotFound("bug report not found")
        await require_visible(repos.members, actor, bug.project_id, "bug report")
    return bug


async def list_bugs(
    ctx: ServiceContext, actor: Actor, filters: BugFilter, page: PageRequest
) -> Page[BugReport]:
    """Bugs the actor may see, filtered; a project the actor cannot see is `not_found`."""
    where = []
    async with ctx.db.read() as repos:
        if filters.project_id is not None:
            await require_visible(repos.members, actor, filters.project_id, "project")
            where.append(bug_reports.c.project_id == filters.project_id)
        elif not sees_all_projects(actor.role):
            visible = await repos.members.project_ids_of(actor.user_id)
            where.append(bug_reports.c.project_id.in_(visible))
        if filters.status is not None:
            where.append(bug_reports.c.status == filters.status.value)
        if filters.priority is not None:
            where.append(bug_reports.c.priority == filters.priority.value)
        if filters.assignee_id is not None:
            where.append(bug_reports.c.assignee_id == filters.assignee_id)
        items, total = await repos.bugs.list(where, limit=page.limit, offset=page.offset)
    return Page[BugReport](items=items, total=total, limit=page.limit, offset=page.offset)
