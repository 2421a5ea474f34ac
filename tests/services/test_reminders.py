"""Reminders: assignees of bugs left open and untouched too long are nudged, once per period.

Time is the FakeClock's (`clock.advance(days=...)`); `ctx.reminder_age` is 3 days. Every test
runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import pytest

from bugstream.domain.enums import BugStatus, NotificationType, Role
from bugstream.domain.errors import Conflict, Forbidden, NotFound
from bugstream.domain.models import (
    BugAssign,
    BugStatusChange,
    BugUpdate,
    Notification,
    Project,
    User,
)
from bugstream.services import bugs, projects, reminders
from bugstream.services.context import Actor, Result, ServiceContext
from tests.support.clock import FakeClock
from tests.support.events import (
    assert_notified,
    events_since,
    kinds,
    last_event_id,
    notifications_of,
    writes_nothing,
    written_by,
)
from tests.support.factory import Factory

REMINDER = NotificationType.REMINDER_SENT


@dataclass
class Team:
    admin: Actor
    manager: User
    dev: User
    dev2: User
    project: Project


@pytest.fixture
async def team(factory: Factory) -> Team:
    manager = await factory.user(Role.MANAGER)
    dev = await factory.user(Role.DEVELOPER)
    dev2 = await factory.user(Role.DEVELOPER)
    project = await factory.project(manager, dev, dev2)
    return Team(await factory.admin(), manager, dev, dev2, project)


def actor(user: User) -> Actor:
    return Factory.actor(user)


def age_past_due(ctx: ServiceContext, clock: FakeClock) -> None:
    """Move time just past one reminder period."""
    clock.advance(seconds=ctx.reminder_age.total_seconds() + 60)


async def sweep(ctx: ServiceContext) -> tuple[Result[list[Notification]], list[tuple[str, str]]]:
    """Run the sweep; its result, after checking it matches the outbox exactly."""
    mark = await last_event_id(ctx)
    result = await reminders.send_due_reminders(ctx)
    events = await written_by(ctx, result, mark)
    assert [n.id for n in result.value] == [e.payload["id"] for e in events]
    return result, kinds(events)


async def reminders_for(ctx: ServiceContext, user: User) -> list[Notification]:
    return [n for n in await notifications_of(ctx, user) if n.type is REMINDER]


async def test_an_old_untouched_bug_reminds_its_assignee_once(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    bug = await factory.bug(team.project, team.manager, assignee=team.dev)
    age_past_due(ctx, clock)

    mark = await last_event_id(ctx)
    result = await reminders.send_due_reminders(ctx)
    events = await written_by(ctx, result, mark)

    assert kinds(events) == [("notification", "reminder_sent")]
    notification = await assert_notified(ctx, events[0], team.dev, REMINDER, bug)
    assert result.value == [notification]
    assert await reminders_for(ctx, team.dev) == [notification]
    # Nobody else hears of it.
    assert await reminders_for(ctx, team.manager) == []


async def test_a_bug_younger_than_the_age_is_not_due(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    await factory.bug(team.project, team.manager, assignee=team.dev)
    clock.advance(seconds=ctx.reminder_age.total_seconds() - 60)
    async with writes_nothing(ctx):
        result = await reminders.send_due_reminders(ctx)
    assert result.value == [] and result.events == ()


async def test_at_most_one_reminder_per_bug_per_period(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    await factory.bug(team.project, team.manager, assignee=team.dev)
    age_past_due(ctx, clock)
    _, first = await sweep(ctx)
    assert first == [("notification", "reminder_sent")]

    # Again at once, and again later within the period: nothing.
    async with writes_nothing(ctx):
        assert (await reminders.send_due_reminders(ctx)).value == []
    clock.advance(days=2)
    async with writes_nothing(ctx):
        assert (await reminders.send_due_reminders(ctx)).value == []

    # One more period on, still untouched: reminded again, once.
    clock.advance(days=1, minutes=2)
    _, second = await sweep(ctx)
    assert second == [("notification", "reminder_sent")]
    assert len(await reminders_for(ctx, team.dev)) == 2
    async with writes_nothing(ctx):
        assert (await reminders.send_due_reminders(ctx)).value == []


@pytest.mark.parametrize("status", [BugStatus.IN_PROGRESS, BugStatus.REOPENED])
async def test_bugs_still_being_worked_on_are_due(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team, status: BugStatus
) -> None:
    bug = await factory.bug(team.project, team.manager, assignee=team.dev)
    if status is BugStatus.REOPENED:
        await bugs.change_bug_status(
            ctx, team.admin, bug.id, BugStatusChange(status=BugStatus.RESOLVED)
        )
    await bugs.change_bug_status(ctx, team.admin, bug.id, BugStatusChange(status=status))
    age_past_due(ctx, clock)
    result, written = await sweep(ctx)
    assert written == [("notification", "reminder_sent")]
    assert result.value[0].user_id == team.dev.id


@pytest.mark.parametrize("status", [BugStatus.RESOLVED, BugStatus.CLOSED])
async def test_resolved_and_closed_bugs_get_no_reminder(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team, status: BugStatus
) -> None:
    bug = await factory.bug(team.project, team.manager, assignee=team.dev)
    await bugs.change_bug_status(ctx, team.admin, bug.id, BugStatusChange(status=status))
    age_past_due(ctx, clock)
    clock.advance(days=30)
    async with writes_nothing(ctx):
        result = await reminders.send_due_reminders(ctx)
    assert result.value == []


async def test_unassigned_bugs_get_no_reminder(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    await factory.bug(team.project, team.manager)
    unassigned = await factory.bug(team.project, team.manager, assignee=team.dev)
    await bugs.unassign_bug(ctx, team.admin, unassigned.id)
    age_past_due(ctx, clock)
    async with writes_nothing(ctx):
        result = await reminders.send_due_reminders(ctx)
    assert result.value == []


async def test_a_recently_updated_bug_gets_no_reminder_until_it_ages_again(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    bug = await factory.bug(team.project, team.manager, assignee=team.dev)
    clock.advance(days=2)
    await bugs.update_bug(ctx, actor(team.dev), bug.id, BugUpdate(description="looking into it"))
    clock.advance(days=2)  # four days old, but touched two days ago
    async with writes_nothing(ctx):
        assert (await reminders.send_due_reminders(ctx)).value == []

    clock.advance(days=1, minutes=2)  # now three days and a bit since the update
    _, written = await sweep(ctx)
    assert written == [("notification", "reminder_sent")]


async def test_each_due_bug_is_reminded_to_its_own_assignee(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    first = await factory.bug(team.project, team.manager, assignee=team.dev, title="first")
    second = await factory.bug(team.project, team.manager, assignee=team.dev2, title="second")
    third = await factory.bug(team.project, team.manager, assignee=team.dev, title="third")
    age_past_due(ctx, clock)

    mark = await last_event_id(ctx)
    result = await reminders.send_due_reminders(ctx)
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("notification", "reminder_sent")] * 3
    await assert_notified(ctx, events[0], team.dev, REMINDER, first)
    await assert_notified(ctx, events[1], team.dev2, REMINDER, second)
    await assert_notified(ctx, events[2], team.dev, REMINDER, third)


async def test_a_sweep_larger_than_one_batch_reminds_every_bug(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    made = [await factory.bug(team.project, team.manager, assignee=team.dev) for _ in range(5)]
    age_past_due(ctx, clock)
    mark = await last_event_id(ctx)
    result = await reminders.send_due_reminders(ctx, batch=2)
    events = await written_by(ctx, result, mark)
    assert [n.bug_report_id for n in result.value] == [b.id for b in made]
    assert len(events) == 5


async def test_concurrent_sweeps_send_each_reminder_once(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    made = [
        await factory.bug(team.project, team.manager, assignee=assignee)
        for assignee in (team.dev, team.dev2, team.dev, team.dev2)
    ]
    age_past_due(ctx, clock)
    mark = await last_event_id(ctx)

    # Hold the bugs locked (PostgreSQL row locks; SQLite's write lock) while both sweeps start,
    # so that both find all four bugs due and then race to claim them.
    async with ctx.db.transaction() as blocker:
        for bug in made:
            await blocker.bugs.get(bug.id, for_update=True)
        racing = asyncio.gather(
            reminders.send_due_reminders(ctx), reminders.send_due_reminders(ctx)
        )
        await asyncio.sleep(0.2)
        assert not racing.done()
    one, two = await racing

    sent = Counter(n.bug_report_id for n in one.value + two.value)
    assert sent == Counter(b.id for b in made)  # every bug, each exactly once
    events = await events_since(ctx, mark)
    assert kinds(events) == [("notification", "reminder_sent")] * len(made)
    assert sorted(e.event_id for e in one.events + two.events) == [e.event_id for e in events]
    assert len(await reminders_for(ctx, team.dev)) == 2
    assert len(await reminders_for(ctx, team.dev2)) == 2


# ---- remind now -------------------------------------------------------------------------


async def test_a_manager_member_reminds_now_whatever_the_age(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    bug = await factory.bug(team.project, team.manager, assignee=team.dev)
    mark = await last_event_id(ctx)
    result = await reminders.remind_now(ctx, actor(team.manager), bug.id)
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("notification", "reminder_sent")]
    notification = await assert_notified(ctx, events[0], team.dev, REMINDER, bug)
    assert result.value == notification


async def test_remind_now_counts_as_this_periods_reminder(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    bug = await factory.bug(team.project, team.manager, assignee=team.dev)
    age_past_due(ctx, clock)
    await reminders.remind_now(ctx, team.admin, bug.id)
    async with writes_nothing(ctx):
        assert (await reminders.send_due_reminders(ctx)).value == []
    age_past_due(ctx, clock)
    _, written = await sweep(ctx)
    assert written == [("notification", "reminder_sent")]


async def test_a_developer_may_not_remind(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    bug = await factory.bug(team.project, team.manager, assignee=team.dev)
    async with writes_nothing(ctx):
        with pytest.raises(Forbidden):
            await reminders.remind_now(ctx, actor(team.dev2), bug.id)


async def test_a_manager_outside_the_project_does_not_see_the_bug(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    bug = await factory.bug(team.project, team.manager, assignee=team.dev)
    stranger = await factory.user(Role.MANAGER)
    async with writes_nothing(ctx):
        with pytest.raises(NotFound):
            await reminders.remind_now(ctx, actor(stranger), bug.id)


async def test_reminding_about_an_unassigned_bug_is_a_conflict(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    bug = await factory.bug(team.project, team.manager)
    async with writes_nothing(ctx):
        with pytest.raises(Conflict):
            await reminders.remind_now(ctx, actor(team.manager), bug.id)


async def test_reminding_about_an_unknown_bug_is_not_found(ctx: ServiceContext, team: Team) -> None:
    async with writes_nothing(ctx):
        with pytest.raises(NotFound):
            await reminders.remind_now(ctx, team.admin, 999_999)


# ---- the sweep on demand ----------------------------------------------------------------


async def test_run_reminders_is_the_sweep_for_admins(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    bug = await factory.bug(team.project, team.manager, assignee=team.dev)
    age_past_due(ctx, clock)
    mark = await last_event_id(ctx)
    result = await reminders.run_reminders(ctx, team.admin)
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("notification", "reminder_sent")]
    await assert_notified(ctx, events[0], team.dev, REMINDER, bug)


@pytest.mark.parametrize("role", [Role.MANAGER, Role.DEVELOPER, Role.REPORTER, Role.VIEWER])
async def test_run_reminders_is_admin_only(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team, role: Role
) -> None:
    await factory.bug(team.project, team.manager, assignee=team.dev)
    user = team.manager if role is Role.MANAGER else await factory.user(role)
    age_past_due(ctx, clock)
    async with writes_nothing(ctx):
        with pytest.raises(Forbidden):
            await reminders.run_reminders(ctx, actor(user))


async def test_a_reassigned_bug_reminds_only_the_current_assignee(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    bug = await factory.bug(team.project, team.manager, assignee=team.dev)
    clock.advance(days=1)
    await bugs.assign_bug(ctx, team.admin, bug.id, BugAssign(assignee_id=team.dev2.id))
    age_past_due(ctx, clock)
    result, _ = await sweep(ctx)
    assert [n.user_id for n in result.value] == [team.dev2.id]
    assert await reminders_for(ctx, team.dev) == []


async def test_an_assignee_removed_from_the_project_is_not_reminded(
    ctx: ServiceContext, factory: Factory, clock: FakeClock, team: Team
) -> None:
    bug = await factory.bug(team.project, team.manager, assignee=team.dev)
    await projects.remove_member(ctx, team.admin, team.project.id, team.dev.id)
    age_past_due(ctx, clock)
    async with writes_nothing(ctx, except_tables={"bug_reports"}):
        assert (await reminders.send_due_reminders(ctx)).value == []
    async with writes_nothing(ctx):
        with pytest.raises(Conflict):
            await reminders.remind_now(ctx, actor(team.manager), bug.id)
    assert await reminders_for(ctx, team.dev) == []
