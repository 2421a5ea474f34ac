"""Projects and their members."""

from __future__ import annotations

from typing import Any

from bugstream.domain.errors import Conflict, FieldError, NotFound, field_conflict
from bugstream.domain.events import EventName
from bugstream.domain.models import (
    Membership,
    MembershipAdd,
    Page,
    PageRequest,
    Project,
    ProjectCreate,
    ProjectUpdate,
    User,
)
from bugstream.domain.permissions import Action, sees_all_projects
from bugstream.services.access import require, require_visible
from bugstream.services.bugs import unassign_all_of
from bugstream.services.context import Actor, Result, ServiceContext
from bugstream.services.events import membership_event, project_event
from bugstream.store.database import Transaction
from bugstream.store.tables import memberships, projects


def _name_taken(name: str) -> Conflict:
    return Conflict(
        "a project with this name already exists",
        details={"fields": [FieldError("name", "unique", "name is already taken")]},
    )


async def _get_project(tx: Transaction, actor: Actor, project_id: int) -> Project:
    project = await tx.projects.get(project_id, for_update=True)
    if project is None:
        raise NotFound("project not found")
    await require_visible(tx.members, actor, project_id, "project")
    return project


async def create_project(ctx: ServiceContext, actor: Actor, data: ProjectCreate) -> Result[Project]:
    """Create a project; its creator becomes its first member."""
    async with ctx.db.transaction() as tx:
        await require(tx.members, actor, Action.PROJECT_CREATE)
        if await tx.projects.name_taken(data.name):
            raise _name_taken(data.name)
        now = ctx.clock()
        project = await tx.projects.insert(
            {
                "name": data.name,
                "description": data.description,
                "created_at": now,
                "updated_at": now,
            }
        )
        membership = await tx.members.add(project.id, actor.user_id, now)
        # Membership first: a stream delivers project events to members, so the creator is
        # one before `project.created` goes out.
        await tx.outbox.emit(membership_event(EventName.ADDED, membership))
        await tx.outbox.emit(project_event(EventName.CREATED, project))
    return Result(project, tuple(tx.outbox.events))


async def update_project(
    ctx: ServiceContext, actor: Actor, project_id: int, data: ProjectUpdate
) -> Result[Project]:
    async with ctx.db.transaction() as tx:
        project = await _get_project(tx, actor, project_id)
        await require(tx.members, actor, Action.PROJECT_UPDATE, project_id=project_id)
        values: dict[str, Any] = {
            k: v for k, v in data.model_dump(exclude_none=True).items() if getattr(project, k) != v
        }
        if not values:
            return Result(project)
        if "name" in values and await tx.projects.name_taken(values["name"], except_id=project_id):
            raise _name_taken(values["name"])
        values["updated_at"] = ctx.clock()
        updated = await tx.projects.update(project_id, values)
        assert updated is not None
        await tx.outbox.emit(project_event(EventName.UPDATED, updated))
    return Result(updated, tuple(tx.outbox.events))


async def delete_project(ctx: ServiceContext, actor: Actor, project_id: int) -> Result[Project]:
    """Delete a project with its bugs, comments and memberships (one `project.deleted`)."""
    async with ctx.db.transaction() as tx:
        project = await _get_project(tx, actor, project_id)
        await require(tx.members, actor, Action.PROJECT_DELETE, project_id=project_id)
        await tx.projects.delete(project_id)
        await tx.outbox.emit(project_event(EventName.DELETED, project))
    return Result(project, tuple(tx.outbox.events))


async def get_project(ctx: ServiceContext, actor: Actor, project_id: int) -> Project:
    async with ctx.db.read() as repos:
        project = await repos.projects.get(project_id)
        if project is None:
            raise NotFound("project not found")
        await require_visible(repos.members, actor, project_id, "project")
    return project


async def list_projects(ctx: ServiceContext, actor: Actor, page: PageRequest) -> Page[Project]:
    """Every project for admins; the projects one is a member of for everyone else."""
    where = []
    if not sees_all_projects(actor.role):
        where.append(
            projects.c.id.in_(
                memberships.select()
                .with_only_columns(memberships.c.project_id)
                .where(memberships.c.user_id == actor.user_id)
            )
        )
    async with ctx.db.read() as repos:
        items, total = await repos.projects.list(where, limit=page.limit, offset=page.offset)
    return Page[Project](items=items, total=total, limit=page.limit, offset=page.offset)


async def add_member(
    ctx: ServiceContext, actor: Actor, project_id: int, data: MembershipAdd
) -> Result[Membership]:
    async with ctx.db.transaction() as tx:
        await _get_project(tx, actor, project_id)
        await require(tx.members, actor, Action.MEMBER_MANAGE, project_id=project_id)
        if await tx.users.get(data.user_id) is None:
            raise field_conflict("user_id", "exists", "no such user")
        if await tx.members.is_member(project_id, data.user_id):
            raise Conflict("user is already a member of the project")
        membership = await tx.members.add(project_id, data.user_id, ctx.clock())
        await tx.outbox.emit(membership_event(EventName.ADDED, membership))
    return Result(membership, tuple(tx.outbox.events))


async def remove_member(
    ctx: ServiceContext, actor: Actor, project_id: int, user_id: int
) -> Result[Membership]:
    """Remove a member: their bugs in the project are unassigned first (with events); from
    the `membership.removed` event on, they see nothing of the project."""
    async with ctx.db.transaction() as tx:
        await _get_project(tx, actor, project_id)
        await require(tx.members, actor, Action.MEMBER_MANAGE, project_id=project_id)
        membership = await tx.members.remove(project_id, user_id)
        if membership is None:
            raise NotFound("membership not found")
        await member_removed(ctx, tx, membership)
    return Result(membership, tuple(tx.outbox.events))


async def member_removed(ctx: ServiceContext, tx: Transaction, membership: Membership) -> None:
    """What a removed membership means, however it was removed (this API, or SQL seen by
    change capture): a non-member cannot work on (or even see) the project's bugs, so those
    assigned to them are unassigned (`bug_report.unassigned` each), then
    `membership.removed`. One derivation for both paths, so both give the same events."""
    if not await tx.members.is_member(membership.project_id, membership.user_id):
        # Re-added since (capture runs after the fact): their assignments stand.
        await unassign_all_of(ctx, tx, membership.user_id, project_id=membership.project_id)
    await tx.outbox.emit(membership_event(EventName.REMOVED, membership))


async def list_members(ctx: ServiceContext, actor: Actor, project_id: int) -> list[User]:
    async with ctx.db.read() as repos:
        if await repos.projects.get(project_id) is None:
            raise NotFound("project not found")
        await require_visible(repos.members, actor, project_id, "project")
        return await repos.members.members(project_id)
