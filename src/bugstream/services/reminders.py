"""Reminders: nudge the assignees of bugs that have sat open and untouched for too long.

A bug is due when its status is open, in progress or reopened, it has an assignee, its
`updated_at` is older than `age`, and no reminder went out for it within the last `age` (the
period). Claiming a bug is a compare-and-set on `reminded_at`, so however many instances run
the sweep, each bug gets at most one reminder per period.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bugstream.background import BackgroundLoop
from bugstream.domain.enums import NotificationType
from bugstream.domain.errors import Conflict, Forbidden, NotFound
from bugstream.domain.events import Event
from bugstream.domain.models import Notification
from bugstream.domain.permissions import Action, allows
from bugstream.services.access import require, require_visible
from bugstream.services.context import Actor, Result, ServiceContext
from bugstream.services.notifications import notify

log = logging.getLogger(__name__)


async def send_due_reminders(
    ctx: ServiceContext, *, batch: int = 100
) -> Result[list[Notification]]:
    """Send every reminder that is due now; the notifications sent and their events."""
    age = ctx.reminder_age
    sent: list[Notification] = []
    events: list[Event] = []
    while True:
        now = ctx.clock()
        async with ctx.db.read() as repos:
            due = await repos.bugs.due_for_reminder(
                untouched_since=now - age, reminded_before=now - age, limit=batch
            )
        for bug in due:
            async with ctx.db.transaction() as tx:
                if not await tx.bugs.claim_reminder(bug.id, now=now, reminded_before=now - age):
                    continue  # another instance took it
                sent += await notify(
                    ctx, tx, NotificationType.REMINDER_SENT, bug, [bug.assignee_id], actor_id=None
                )
            events += tx.outbox.events
        if len(due) < batch:
            return Result(sent, tuple(events))


async def run_reminders(ctx: ServiceContext, actor: Actor) -> Result[list[Notification]]:
    """The sweep, on an admin's demand instead of the schedule."""
    if not allows(actor.role, Action.REMINDER_SEND):
        raise Forbidden("only admins may run the reminder sweep")
    return await send_due_reminders(ctx)


async def remind_now(ctx: ServiceContext, actor: Actor, bug_id: int) -> Result[Notification]:
    """Send a reminder for one bug at once, whatever its age (managers and admins)."""
    async with ctx.db.transaction() as tx:
        bug = await tx.bugs.get(bug_id, for_update=True)
        if bug is None:
            raise NotFound("bug report not found")
        await require_visible(tx.members, actor, bug.project_id, "bug report")
        await require(tx.members, actor, Action.REMINDER_SEND, project_id=bug.project_id)
        if bug.assignee_id is None:
            raise Conflict("the bug has no assignee to remind")
        now = ctx.clock()
        await tx.bugs.claim_reminder(bug.id, now=now, reminded_before=now + timedelta(seconds=1))
        notifications = await notify(
            ctx, tx, NotificationType.REMINDER_SENT, bug, [bug.assignee_id], actor_id=None
        )
        if not notifications:
            raise Conflict("the bug's assignee is no longer a member of its project")
    return Result(notifications[0], tuple(tx.outbox.events))


class ReminderScheduler(BackgroundLoop):
    """Runs `send_due_reminders` every `interval` seconds until stopped."""

    def __init__(self, ctx: ServiceContext, *, interval: float) -> None:
        super().__init__(
            "bugstream-reminders",
            self._sweep,
            interval=interval,
            log=log,
            failure="reminder sweep failed",
        )
        self._ctx = ctx

    async def _sweep(self) -> None:
        result = await send_due_reminders(self._ctx)
        if result.value:
            log.info("sent %d reminders", len(result.value))
