"""Comments on bug reports."""

from __future__ import annotations

from bugstream.domain.enums import NotificationType
from bugstream.domain.errors import NotFound
from bugstream.domain.events import EventName
from bugstream.domain.models import (
    BugReport,
    Comment,
    CommentCreate,
    CommentUpdate,
    Page,
    PageRequest,
)
from bugstream.domain.permissions import Action
from bugstream.services.access import require, require_visible
from bugstream.services.context import Actor, Result, ServiceContext
from bugstream.services.events import comment_event
from bugstream.services.notifications import notify
from bugstream.store.database import Transaction
from bugstream.store.repositories import Repositories
from bugstream.store.tables import comments


async def _visible_bug(repos: Repositories, actor: Actor, bug_id: int) -> BugReport:
    bug = await repos.bugs.get(bug_id)
    if bug is None:
        raise NotFound("bug report not found")
    await require_visible(repos.members, actor, bug.project_id, "bug report")
    return bug


async def _comment_and_bug(
    tx: Transaction, actor: Actor, comment_id: int
) -> tuple[Comment, BugReport]:
    comment = await tx.comments.get(comment_id, for_update=True)
    if comment is None:
        raise NotFound("comment not found")
    bug = await tx.bugs.get(comment.bug_report_id)
    assert bug is not None  # comments cascade with their bug
    await require_visible(tx.members, actor, bug.project_id, "comment")
    return comment, bug


async def create_comment(
    ctx: ServiceContext, actor: Actor, bug_id: int, data: CommentCreate
) -> Result[Comment]:
    """Comment on a bug; its reporter and assignee (not the author) get `comment_added`."""
    async with ctx.db.transaction() as tx:
        bug = await _visible_bug(tx, actor, bug_id)
        await require(tx.members, actor, Action.COMMENT_CREATE, project_id=bug.project_id)
        now = ctx.clock()
        comment = await tx.comments.insert(
            {
                "bug_report_id": bug.id,
                "user_id": actor.user_id,
                "content": data.content,
                "created_at": now,
                "updated_at": now,
            }
        )
        await tx.outbox.emit(comment_event(EventName.CREATED, comment, bug.project_id))
        await notify(
            ctx,
            tx,
            NotificationType.COMMENT_ADDED,
            bug,
            [bug.reporter_id, bug.assignee_id],
            actor_id=actor.user_id,
        )
    return Result(comment, tuple(tx.outbox.events))


async def update_comment(
    ctx: ServiceContext, actor: Actor, comment_id: int, data: CommentUpdate
) -> Result[Comment]:
    async with ctx.db.transaction() as tx:
        comment, bug = await _comment_and_bug(tx, actor, comment_id)
        await require(
            tx.members,
            actor,
            Action.COMMENT_UPDATE,
            project_id=bug.project_id,
            owner_id=comment.user_id,
        )
        if comment.content == data.content:
            return Result(comment)
        updated = await tx.comments.update(
            comment_id, {"content": data.content, "updated_at": ctx.clock()}
        )
        assert updated is not None
        await tx.outbox.emit(comment_event(EventName.UPDATED, updated, bug.project_id))
    return Result(updated, tuple(tx.outbox.events))


async def delete_comment(ctx: ServiceContext, actor: Actor, comment_id: int) -> Result[Comment]:
    async with ctx.db.transaction() as tx:
        comment, bug = await _comment_and_bug(tx, actor, comment_id)
        await require(
            tx.members,
            actor,
            Action.COMMENT_DELETE,
            project_id=bug.project_id,
            owner_id=comment.user_id,
        )
        await tx.comments.delete(comment_id)
        await tx.outbox.emit(comment_event(EventName.DELETED, comment, bug.project_id))
    return Result(comment, tuple(tx.outbox.events))


async def get_comment(ctx: ServiceContext, actor: Actor, comment_id: int) -> Comment:
    async with ctx.db.read() as repos:
        comment = await repos.comments.get(comment_id)
        if comment is None:
            raise NotFound("comment not found")
        await _visible_bug(repos, actor, comment.bug_report_id)
    return comment


async def list_comments(
    ctx: ServiceContext, actor: Actor, bug_id: int, page: PageRequest
) -> Page[Comment]:
    async with ctx.db.read() as repos:
        await _visible_bug(repos, actor, bug_id)
        items, total = await repos.comments.list(
            [comments.c.bug_report_id == bug_id], limit=page.limit, offset=page.offset
        )
    return Page[Comment](items=items, total=total, limit=page.limit, offset=page.offset)
