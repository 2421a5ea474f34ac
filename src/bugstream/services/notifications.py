"""Notifications: created by other actions, read and marked read by their owner."""

from __future__ import annotations

from collections.abc import Iterable

from bugstream.domain.enums import NotificationType
from bugstream.domain.errors import NotFound
from bugstream.domain.models import BugReport, Notification, Page, PageRequest
from bugstream.domain.permissions import sees_all_projects
from bugstream.domain.text import MESSAGE_MAX
from bugstream.services.context import Actor, Result, ServiceContext
from bugstream.services.events import notification_event
from bugstream.store.database import Transaction
from bugstream.store.tables import notifications


def _quote(title: str, limit: int = 120) -> str:
    return f"'{title}'" if len(title) <= limit else f"'{title[: limit - 1]}…'"


def message_for(kind: NotificationType, bug: BugReport, actor_name: str | None) -> str:
    """The one-line text of a notification (plain text: clients must not render it as HTML)."""
    who = actor_name or "someone"
    subject = f"bug #{bug.id} {_quote(bug.title)}"
    text = {
        NotificationType.BUG_ASSIGNED: f"{who} assigned {subject} to you",
        NotificationType.COMMENT_ADDED: f"{who} commented on {subject}",
        NotificationType.STATUS_CHANGED: f"{who} moved {subject} to {bug.status.value}",
        NotificationType.REMINDER_SENT: (
            f"Reminder: {subject} is {bug.status.value} and has not changed for a while"
        ),
    }[kind]
    return text[:MESSAGE_MAX]


async def notify(
    ctx: ServiceContext,
    tx: Transaction,
    kind: NotificationType,
    bug: BugReport,
    recipients: Iterable[int | None],
    *,
    actor_id: int | None,
) -> list[Notification]:
    """Write one notification (row and event) per distinct recipient, never to the actor, and
    never to someone who may not see the bug's project."""
    targets = [u for u in dict.fromkeys(recipients) if u is not None and u != actor_id]
    if not targets:
        return []  # e.g. a bug created without an assignee: nothing to look up
    actor_name = None
    if actor_id is not None:
        actor = await tx.users.get(actor_id)
        actor_name = actor.username if actor else None
    message = message_for(kind, bug, actor_name)
    sent: list[Notification] = []
    for user_id in targets:
        if not await _sees_project(tx, user_id, bug.project_id):
            # E.g. an assignee or reporter since removed from the project: the message quotes
            # the bug's title, and project data is for members (and admins) only.
            continue
        notification = await tx.notifications.insert(
            {
                "type": kind.value,
                "user_id": user_id,
                "bug_report_id": bug.id,
                "message": message,
                "read": False,
                "created_at": ctx.clock(),
            }
        )
        await tx.outbox.emit(notification_event(notification))
        sent.append(notification)
    return sent


async def _sees_project(tx: Transaction, user_id: int, project_id: int) -> bool:
    if await tx.members.is_member(project_id, user_id):
        return True
    user = await tx.users.get(user_id)
    return user is not None and sees_all_projects(user.role)


async def list_notifications(
    ctx: ServiceContext, actor: Actor, page: PageRequest, *, unread_only: bool = False
) -> Page[Notification]:
    """The actor's own notifications, oldest first."""
    where = [notifications.c.user_id == actor.user_id]
    if unread_only:
        where.append(notifications.c.read.is_(False))
    async with ctx.db.read() as repos:
        items, total = await repos.notifications.list(where, limit=page.limit, offset=page.offset)
    return Page[Notification](items=items, total=total, limit=page.limit, offset=page.offset)


async def get_notification(ctx: ServiceContext, actor: Actor, notification_id: int) -> Notification:
    async with ctx.db.read() as repos:
        notification = await repos.notifications.get(notification_id)
    if notification is None or notification.user_id != actor.user_id:
        raise NotFound("notification not found")
    return notification


async def mark_read(
    ctx: ServiceContext, actor: Actor, notification_id: int
) -> Result[Notification]:
    """Mark one of the actor's notifications read (idempotent)."""
    async with ctx.db.transaction() as tx:
        notification = await tx.notifications.get(notification_id)
        if notification is None or notification.user_id != actor.user_id:
            raise NotFound("notification not found")
        if not notification.read:
            await tx.notifications.mark_read(actor.user_id, [notification_id])
            notification = notification.model_copy(update={"read": True})
    return Result(notification)


async def mark_all_read(ctx: ServiceContext, actor: Actor) -> Result[list[int]]:
    """Mark every unread notification of the actor read; the ids that changed."""
    async with ctx.db.transaction() as tx:
        ids = await tx.notifications.mark_read(actor.user_id, None)
    return Result(ids)
