"""Every action writes exactly the events (and notifications) the spec lists; a failed one none.

Each test marks the newest event id, runs one action, and reads back what was committed after
the mark: the exact `(type, event)` list, `Result.events` equal to it, every payload complete
and equal to the entity's new state, times in UTC with `Z`, routing keys, increasing ids.
Every test runs on SQLite and on PostgreSQL (the `backend` parameter of `ctx`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bugstream.domain.enums import BugStatus, NotificationType, Priority, Role, UserStatus
from bugstream.domain.errors import BugstreamError, Conflict, Forbidden, NotFound
from bugstream.domain.events import EVENT_NAMES, SPEC_EVENTS, EventName, EventType
from bugstream.domain.models import (
    BugAssign,
    BugCreate,
    BugReport,
    BugStatusChange,
    BugUpdate,
    Comment,
    CommentCreate,
    CommentUpdate,
    MembershipAdd,
    PageRequest,
    Project,
    ProjectCreate,
    ProjectUpdate,
    User,
    UserCreate,
    UserStatusChange,
    UserUpdate,
)
from bugstream.services import bugs, comments, notifications, projects, reminders, users
from bugstream.services.context import Actor, ServiceContext
from bugstream.services.events import bug_event, project_event
from tests.support.clock import FakeClock
from tests.support.events import (
    assert_notified,
    assert_payload,
    check_events,
    events_since,
    kinds,
    last_event_id,
    notifications_of,
    parse_time,
    snapshot,
    writes_nothing,
    written_by,
)
from tests.support.factory import PASSWORD, Factory

ASSIGNED = NotificationType.BUG_ASSIGNED
COMMENTED = NotificationType.COMMENT_ADDED
STATUS = NotificationType.STATUS_CHANGED


def actor(user: User) -> Actor:
    return Factory.actor(user)


@dataclass
class Team:
    """A project with one member of each role, an outsider, a bug and a comment on it."""

    admin: Actor
    manager: User
    dev: User
    dev2: User
    reporter: User
    viewer: User
    outsider: User
    project: Project
    bug: BugReport  # reported by `reporter`, assigned to `dev`
    comment: Comment  # by `dev2` on `bug`


@pytest.fixture
async def team(factory: Factory) -> Team:
    admin = await factory.admin()
    manager = await factory.user(Role.MANAGER)
    dev = await factory.user(Role.DEVELOPER)
    dev2 = await factory.user(Role.DEVELOPER)
    reporter = await factory.user(Role.REPORTER)
    viewer = await factory.user(Role.VIEWER)
    outsider = await factory.user(Role.DEVELOPER)
    project = await factory.project(manager, dev, dev2, reporter, viewer)
    bug = await factory.bug(project, reporter, assignee=dev)
    comment = await factory.comment(bug, dev2)
    return Team(admin, manager, dev, dev2, reporter, viewer, outsider, project, bug, comment)


# ---- users ------------------------------------------------------------------------------


@pytest.mark.parametrize("by_admin", [True, False], ids=["admin", "system"])
async def test_create_user_writes_user_created(
    ctx: ServiceContext, factory: Factory, by_admin: bool
) -> None:
    admin = await factory.admin() if by_admin else None
    mark = await last_event_id(ctx)
    data = UserCreate(
        username="alice", email="alice@example.com", password=PASSWORD, role=Role.DEVELOPER
    )
    result = await users.create_user(ctx, admin, data)

    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("user", "created")]
    user = result.value
    assert_payload(events[0], user)
    payload = events[0].payload
    assert payload["username"] == "alice"
    assert payload["email"] == "alice@example.com"
    assert payload["role"] == "developer"
    assert payload["status"] == "active"
    assert payload["created_at"] == payload["updated_at"]
    assert events[0].user_id == user.id
    # The password (or its hash) never travels in an event.
    assert not any("password" in key for key in payload)
    assert PASSWORD not in str(payload)


async def test_admin_update_user_writes_user_updated(ctx: ServiceContext, team: Team) -> None:
    before = team.dev
    mark = await last_event_id(ctx)
    result = await users.update_user(
        ctx,
        team.admin,
        before.id,
        UserUpdate(username="renamed", email="renamed@example.com", role=Role.MANAGER),
    )

    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("user", "updated")]
    assert_payload(events[0], result.value)
    payload = events[0].payload
    assert (payload["id"], payload["username"], payload["email"], payload["role"]) == (
        before.id,
        "renamed",
        "renamed@example.com",
        "manager",
    )
    assert parse_time(payload["updated_at"]) > before.updated_at
    assert parse_time(payload["created_at"]) == before.created_at
    assert events[0].user_id == before.id


async def test_self_update_writes_user_updated(ctx: ServiceContext, team: Team) -> None:
    mark = await last_event_id(ctx)
    result = await users.update_user(
        ctx, actor(team.reporter), team.reporter.id, UserUpdate(email="new@example.com")
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("user", "updated")]
    assert_payload(events[0], result.value)
    assert events[0].payload["email"] == "new@example.com"


async def test_update_user_with_identical_values_writes_nothing(
    ctx: ServiceContext, team: Team
) -> None:
    same = UserUpdate(username=team.dev.username, email=team.dev.email, role=team.dev.role)
    async with writes_nothing(ctx):
        result = await users.update_user(ctx, team.admin, team.dev.id, same)
    assert result.events == ()
    assert result.value == team.dev


async def test_change_user_status_writes_status_changed(ctx: ServiceContext, team: Team) -> None:
    mark = await last_event_id(ctx)
    result = await users.change_user_status(
        ctx, team.admin, team.dev.id, UserStatusChange(status=UserStatus.SUSPENDED)
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("user", "status_changed")]
    assert_payload(events[0], result.value, previous_status="active")
    assert events[0].payload["status"] == "suspended"
    assert events[0].user_id == team.dev.id


async def test_change_user_status_to_same_status_writes_nothing(
    ctx: ServiceContext, team: Team
) -> None:
    async with writes_nothing(ctx):
        result = await users.change_user_status(
            ctx, team.admin, team.dev.id, UserStatusChange(status=UserStatus.ACTIVE)
        )
    assert result.events == ()


async def test_delete_user_unassigns_their_bugs_first(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    # dev is assigned team.bug and one more, and reported a third bug.
    second = await factory.bug(team.project, team.reporter, assignee=team.dev, title="second")
    own = await factory.bug(team.project, team.dev, title="reported by dev")
    dev_comment = await factory.comment(team.bug, team.dev)
    mark = await last_event_id(ctx)

    result = await users.delete_user(ctx, team.admin, team.dev.id)

    events = await written_by(ctx, result, mark)
    assert kinds(events) == [
        ("bug_report", "unassigned"),
        ("bug_report", "unassigned"),
        ("user", "deleted"),
    ]
    for event, bug in zip(events, (team.bug, second), strict=False):
        assert event.payload["id"] == bug.id
        assert event.payload["assignee_id"] is None
        assert event.payload["previous_assignee_id"] == team.dev.id
        assert event.project_id == team.project.id
        now = await bugs.get_bug(ctx, team.admin, bug.id)
        assert_payload(event, now, previous_assignee_id=team.dev.id)
    assert_payload(events[2], team.dev)
    assert events[2].user_id == team.dev.id

    # History stays: the reported bug and the comment remain, without the reference.
    assert (await bugs.get_bug(ctx, team.admin, own.id)).reporter_id is None
    assert (await comments.get_comment(ctx, team.admin, dev_comment.id)).user_id is None
    with pytest.raises(NotFound):
        await users.get_user(ctx, team.admin, team.dev.id)


# ---- projects ---------------------------------------------------------------------------


async def test_create_project_writes_creator_membership_then_project_created(
    ctx: ServiceContext, team: Team
) -> None:
    mark = await last_event_id(ctx)
    result = await projects.create_project(
        ctx, actor(team.manager), ProjectCreate(name="Apollo", description="moon")
    )
    events = await written_by(ctx, result, mark)
    # The creator is a member before `project.created` goes out, so their stream carries it.
    assert kinds(events) == [("membership", "added"), ("project", "created")]
    project = result.value
    membership, created = events
    assert membership.payload["project_id"] == project.id
    assert membership.payload["user_id"] == team.manager.id
    assert (membership.project_id, membership.user_id) == (project.id, team.manager.id)
    assert_payload(created, project)
    assert (created.payload["name"], created.payload["description"]) == ("Apollo", "moon")
    assert created.project_id == project.id


async def test_update_project_writes_project_updated(ctx: ServiceContext, team: Team) -> None:
    mark = await last_event_id(ctx)
    result = await projects.update_project(
        ctx, actor(team.manager), team.project.id, ProjectUpdate(description="new words")
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("project", "updated")]
    assert_payload(events[0], result.value)
    assert events[0].payload["description"] == "new words"
    assert events[0].payload["name"] == team.project.name
    assert parse_time(events[0].payload["updated_at"]) > team.project.updated_at


async def test_update_project_with_identical_values_writes_nothing(
    ctx: ServiceContext, team: Team
) -> None:
    same = ProjectUpdate(name=team.project.name, description=team.project.description)
    async with writes_nothing(ctx):
        result = await projects.update_project(ctx, actor(team.manager), team.project.id, same)
    assert result.events == ()


async def test_delete_project_writes_one_event_and_removes_its_bugs_and_comments(
    ctx: ServiceContext, team: Team
) -> None:
    before = await snapshot(ctx)
    mark = await last_event_id(ctx)
    result = await projects.delete_project(ctx, team.admin, team.project.id)

    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("project", "deleted")]
    assert_payload(events[0], team.project)
    assert events[0].project_id == team.project.id

    after = await snapshot(ctx)
    assert before["bug_reports"] and not after["bug_reports"]
    assert before["comments"] and not after["comments"]
    assert not after["projects"]
    assert not after["memberships"]
    with pytest.raises(NotFound):
        await bugs.get_bug(ctx, team.admin, team.bug.id)
    with pytest.raises(NotFound):
        await comments.get_comment(ctx, team.admin, team.comment.id)


async def test_add_and_remove_member_write_membership_events(
    ctx: ServiceContext, team: Team
) -> None:
    mark = await last_event_id(ctx)
    added = await projects.add_member(
        ctx, actor(team.manager), team.project.id, MembershipAdd(user_id=team.outsider.id)
    )
    events = await written_by(ctx, added, mark)
    assert kinds(events) == [("membership", "added")]
    assert_payload(events[0], added.value)
    assert (events[0].project_id, events[0].user_id) == (team.project.id, team.outsider.id)

    mark = await last_event_id(ctx)
    removed = await projects.remove_member(
        ctx, actor(team.manager), team.project.id, team.outsider.id
    )
    events = await written_by(ctx, removed, mark)
    assert kinds(events) == [("membership", "removed")]
    assert events[0].payload["project_id"] == team.project.id
    assert events[0].payload["user_id"] == team.outsider.id
    assert (events[0].project_id, events[0].user_id) == (team.project.id, team.outsider.id)


# ---- bug reports ------------------------------------------------------------------------


async def test_create_bug_without_assignee_writes_bug_created(
    ctx: ServiceContext, team: Team
) -> None:
    before = await snapshot(ctx)
    mark = await last_event_id(ctx)
    data = BugCreate(
        project_id=team.project.id, title="Crash", description="on save", priority=Priority.HIGH
    )
    result = await bugs.create_bug(ctx, actor(team.reporter), data)

    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "created")]
    bug = result.value
    assert_payload(events[0], bug)
    payload = events[0].payload
    assert payload["title"] == "Crash"
    assert payload["description"] == "on save"
    assert payload["status"] == "open"
    assert payload["priority"] == "high"
    assert payload["assignee_id"] is None
    assert payload["project_id"] == team.project.id
    assert payload["created_at"] == payload["updated_at"]
    assert events[0].project_id == team.project.id
    assert (await snapshot(ctx))["notifications"] == before["notifications"]


async def test_create_bug_with_assignee_notifies_the_assignee(
    ctx: ServiceContext, team: Team
) -> None:
    mark = await last_event_id(ctx)
    data = BugCreate(project_id=team.project.id, title="Leak", assignee_id=team.dev2.id)
    result = await bugs.create_bug(ctx, actor(team.dev), data)

    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "created"), ("notification", "bug_assigned")]
    assert_payload(events[0], result.value)
    assert events[0].payload["assignee_id"] == team.dev2.id
    await assert_notified(ctx, events[1], team.dev2, ASSIGNED, result.value)


async def test_create_bug_assigned_to_oneself_notifies_nobody(
    ctx: ServiceContext, team: Team
) -> None:
    mark = await last_event_id(ctx)
    data = BugCreate(project_id=team.project.id, title="Mine", assignee_id=team.dev.id)
    result = await bugs.create_bug(ctx, actor(team.dev), data)
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "created")]
    assert events[0].payload["assignee_id"] == team.dev.id


async def test_update_bug_writes_bug_updated(ctx: ServiceContext, team: Team) -> None:
    mark = await last_event_id(ctx)
    result = await bugs.update_bug(
        ctx, actor(team.dev), team.bug.id, BugUpdate(title="Better title", priority=Priority.LOW)
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "updated")]
    assert_payload(events[0], result.value)
    payload = events[0].payload
    assert (payload["title"], payload["priority"]) == ("Better title", "low")
    assert payload["description"] == team.bug.description
    assert payload["status"] == "open"
    assert payload["assignee_id"] == team.dev.id
    assert parse_time(payload["updated_at"]) > team.bug.updated_at


async def test_update_bug_with_identical_values_writes_nothing(
    ctx: ServiceContext, team: Team
) -> None:
    same = BugUpdate(
        title=team.bug.title, description=team.bug.description, priority=team.bug.priority
    )
    async with writes_nothing(ctx):
        result = await bugs.update_bug(ctx, actor(team.dev), team.bug.id, same)
    assert result.events == ()


async def test_status_change_notifies_reporter_and_assignee(
    ctx: ServiceContext, team: Team
) -> None:
    mark = await last_event_id(ctx)
    result = await bugs.change_bug_status(
        ctx, actor(team.manager), team.bug.id, BugStatusChange(status=BugStatus.IN_PROGRESS)
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [
        ("bug_report", "status_changed"),
        ("notification", "status_changed"),
        ("notification", "status_changed"),
    ]
    assert_payload(events[0], result.value, previous_status="open")
    assert events[0].payload["status"] == "in_progress"
    await assert_notified(ctx, events[1], team.reporter, STATUS, team.bug)
    await assert_notified(ctx, events[2], team.dev, STATUS, team.bug)
    assert await notifications_of(ctx, team.manager) == []


async def test_status_change_by_the_assignee_notifies_only_the_reporter(
    ctx: ServiceContext, team: Team
) -> None:
    mark = await last_event_id(ctx)
    before_dev = await notifications_of(ctx, team.dev)
    result = await bugs.change_bug_status(
        ctx, actor(team.dev), team.bug.id, BugStatusChange(status=BugStatus.RESOLVED)
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "status_changed"), ("notification", "status_changed")]
    await assert_notified(ctx, events[1], team.reporter, STATUS, team.bug)
    assert await notifications_of(ctx, team.dev) == before_dev


async def test_status_change_when_reporter_is_assignee_notifies_once(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    bug = await factory.bug(team.project, team.dev2, assignee=team.dev2)
    mark = await last_event_id(ctx)
    result = await bugs.change_bug_status(
        ctx, actor(team.dev), bug.id, BugStatusChange(status=BugStatus.CLOSED)
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "status_changed"), ("notification", "status_changed")]
    await assert_notified(ctx, events[1], team.dev2, STATUS, bug)


async def test_status_change_to_same_status_writes_nothing(ctx: ServiceContext, team: Team) -> None:
    async with writes_nothing(ctx):
        result = await bugs.change_bug_status(
            ctx, actor(team.dev), team.bug.id, BugStatusChange(status=BugStatus.OPEN)
        )
    assert result.events == ()


async def test_assign_notifies_the_assignee(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    bug = await factory.bug(team.project, team.reporter)
    mark = await last_event_id(ctx)
    result = await bugs.assign_bug(
        ctx, actor(team.dev), bug.id, BugAssign(assignee_id=team.dev2.id)
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "assigned"), ("notification", "bug_assigned")]
    assert_payload(events[0], result.value, previous_assignee_id=None)
    assert events[0].payload["assignee_id"] == team.dev2.id
    assert events[0].project_id == team.project.id
    await assert_notified(ctx, events[1], team.dev2, ASSIGNED, bug)


async def test_reassign_notifies_only_the_new_assignee(ctx: ServiceContext, team: Team) -> None:
    mark = await last_event_id(ctx)
    before_dev = await notifications_of(ctx, team.dev)
    result = await bugs.assign_bug(
        ctx, actor(team.manager), team.bug.id, BugAssign(assignee_id=team.dev2.id)
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "assigned"), ("notification", "bug_assigned")]
    assert_payload(events[0], result.value, previous_assignee_id=team.dev.id)
    assert events[0].payload["assignee_id"] == team.dev2.id
    await assert_notified(ctx, events[1], team.dev2, ASSIGNED, team.bug)
    assert await notifications_of(ctx, team.dev) == before_dev


async def test_assigning_oneself_writes_no_notification(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    bug = await factory.bug(team.project, team.reporter)
    mark = await last_event_id(ctx)
    result = await bugs.assign_bug(
        ctx, actor(team.dev2), bug.id, BugAssign(assignee_id=team.dev2.id)
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "assigned")]
    assert await notifications_of(ctx, team.dev2) == []


async def test_assigning_the_same_assignee_writes_nothing(ctx: ServiceContext, team: Team) -> None:
    async with writes_nothing(ctx):
        result = await bugs.assign_bug(
            ctx, actor(team.manager), team.bug.id, BugAssign(assignee_id=team.dev.id)
        )
    assert result.events == ()


async def test_unassign_writes_bug_unassigned(ctx: ServiceContext, team: Team) -> None:
    mark = await last_event_id(ctx)
    result = await bugs.unassign_bug(ctx, actor(team.dev2), team.bug.id)
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "unassigned")]
    assert_payload(events[0], result.value, previous_assignee_id=team.dev.id)
    assert events[0].payload["assignee_id"] is None


async def test_unassigning_an_unassigned_bug_writes_nothing(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    bug = await factory.bug(team.project, team.reporter)
    async with writes_nothing(ctx):
        result = await bugs.unassign_bug(ctx, actor(team.dev), bug.id)
    assert result.events == ()


async def test_delete_bug_writes_bug_deleted_with_its_last_state(
    ctx: ServiceContext, team: Team
) -> None:
    mark = await last_event_id(ctx)
    result = await bugs.delete_bug(ctx, actor(team.manager), team.bug.id)
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "deleted")]
    assert_payload(events[0], team.bug)
    assert events[0].project_id == team.project.id
    with pytest.raises(NotFound):
        await comments.get_comment(ctx, team.admin, team.comment.id)


# ---- comments ---------------------------------------------------------------------------


async def test_comment_notifies_reporter_and_assignee(ctx: ServiceContext, team: Team) -> None:
    mark = await last_event_id(ctx)
    result = await comments.create_comment(
        ctx, actor(team.manager), team.bug.id, CommentCreate(content="Any news?")
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [
        ("comment", "created"),
        ("notification", "comment_added"),
        ("notification", "comment_added"),
    ]
    comment = result.value
    assert_payload(events[0], comment, project_id=team.project.id)
    payload = events[0].payload
    assert (payload["bug_report_id"], payload["user_id"], payload["content"]) == (
        team.bug.id,
        team.manager.id,
        "Any news?",
    )
    assert payload["created_at"] == payload["updated_at"]
    assert events[0].project_id == team.project.id
    await assert_notified(ctx, events[1], team.reporter, COMMENTED, team.bug)
    await assert_notified(ctx, events[2], team.dev, COMMENTED, team.bug)
    assert await notifications_of(ctx, team.manager) == []


@pytest.mark.parametrize("author", ["reporter", "dev"])
async def test_comment_never_notifies_its_author(
    ctx: ServiceContext, team: Team, author: str
) -> None:
    writer, other = (team.reporter, team.dev) if author == "reporter" else (team.dev, team.reporter)
    before = await notifications_of(ctx, writer)
    mark = await last_event_id(ctx)
    result = await comments.create_comment(
        ctx, actor(writer), team.bug.id, CommentCreate(content="me")
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("comment", "created"), ("notification", "comment_added")]
    await assert_notified(ctx, events[1], other, COMMENTED, team.bug)
    assert await notifications_of(ctx, writer) == before


async def test_comment_when_reporter_is_assignee_notifies_once(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    bug = await factory.bug(team.project, team.dev2, assignee=team.dev2)
    mark = await last_event_id(ctx)
    result = await comments.create_comment(ctx, actor(team.dev), bug.id, CommentCreate(content="x"))
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("comment", "created"), ("notification", "comment_added")]
    await assert_notified(ctx, events[1], team.dev2, COMMENTED, bug)


async def test_reporter_commenting_on_own_unassigned_bug_notifies_nobody(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    bug = await factory.bug(team.project, team.reporter)
    mark = await last_event_id(ctx)
    result = await comments.create_comment(
        ctx, actor(team.reporter), bug.id, CommentCreate(content="more detail")
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("comment", "created")]


async def test_update_comment_writes_comment_updated(ctx: ServiceContext, team: Team) -> None:
    mark = await last_event_id(ctx)
    result = await comments.update_comment(
        ctx, actor(team.dev2), team.comment.id, CommentUpdate(content="edited")
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("comment", "updated")]
    assert_payload(events[0], result.value, project_id=team.project.id)
    assert events[0].payload["content"] == "edited"
    assert parse_time(events[0].payload["updated_at"]) > team.comment.updated_at
    assert parse_time(events[0].payload["created_at"]) == team.comment.created_at


async def test_update_comment_with_same_content_writes_nothing(
    ctx: ServiceContext, team: Team
) -> None:
    async with writes_nothing(ctx):
        result = await comments.update_comment(
            ctx, actor(team.dev2), team.comment.id, CommentUpdate(content=team.comment.content)
        )
    assert result.events == ()


async def test_delete_comment_writes_comment_deleted(ctx: ServiceContext, team: Team) -> None:
    mark = await last_event_id(ctx)
    result = await comments.delete_comment(ctx, actor(team.dev2), team.comment.id)
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("comment", "deleted")]
    assert_payload(events[0], team.comment, project_id=team.project.id)
    with pytest.raises(NotFound):
        await comments.get_comment(ctx, team.admin, team.comment.id)


# ---- notifications ----------------------------------------------------------------------


async def test_mark_read_writes_no_event(ctx: ServiceContext, team: Team) -> None:
    notification, _ = await notifications_of(ctx, team.dev)  # assignment, comment
    mark = await last_event_id(ctx)
    result = await notifications.mark_read(ctx, actor(team.dev), notification.id)
    assert result.events == ()
    assert await events_since(ctx, mark) == []
    assert result.value.read is True
    assert [n.read for n in await notifications_of(ctx, team.dev)] == [True, False]

    # Marking it again changes nothing at all.
    async with writes_nothing(ctx):
        again = await notifications.mark_read(ctx, actor(team.dev), notification.id)
    assert again.value.read is True


async def test_mark_all_read_writes_no_event(ctx: ServiceContext, team: Team) -> None:
    # The reporter has two unread: the comment on their bug, and a status change.
    await bugs.change_bug_status(
        ctx, actor(team.dev), team.bug.id, BugStatusChange(status=BugStatus.RESOLVED)
    )
    unread = await notifications_of(ctx, team.reporter)
    assert len(unread) == 2
    mark = await last_event_id(ctx)
    result = await notifications.mark_all_read(ctx, actor(team.reporter))
    assert result.events == ()
    assert await events_since(ctx, mark) == []
    assert result.value == sorted(n.id for n in unread)
    assert all(n.read for n in await notifications_of(ctx, team.reporter))


# ---- failed actions write nothing -------------------------------------------------------

Attempt = Callable[[ServiceContext, Team], Awaitable[Any]]


async def _mark_someone_elses_notification(ctx: ServiceContext, team: Team) -> Any:
    theirs, *_ = await notifications_of(ctx, team.dev)  # dev's assignment notification
    return await notifications.mark_read(ctx, actor(team.reporter), theirs.id)


FAILURES: dict[str, tuple[Attempt, type[BugstreamError]]] = {
    "developer creates a project": (
        lambda c, t: projects.create_project(c, actor(t.dev), ProjectCreate(name="New")),
        Forbidden,
    ),
    "manager creates a user": (
        lambda c, t: users.create_user(
            c,
            actor(t.manager),
            UserCreate(username="eve", email="eve@example.com", password=PASSWORD),
        ),
        Forbidden,
    ),
    "developer deletes a user": (
        lambda c, t: users.delete_user(c, actor(t.dev), t.dev2.id),
        Forbidden,
    ),
    "reporter changes a bug's status": (
        lambda c, t: bugs.change_bug_status(
            c, actor(t.reporter), t.bug.id, BugStatusChange(status=BugStatus.CLOSED)
        ),
        Forbidden,
    ),
    "viewer reports a bug": (
        lambda c, t: bugs.create_bug(
            c, actor(t.viewer), BugCreate(project_id=t.project.id, title="nope")
        ),
        Forbidden,
    ),
    "viewer comments": (
        lambda c, t: comments.create_comment(
            c, actor(t.viewer), t.bug.id, CommentCreate(content="nope")
        ),
        Forbidden,
    ),
    "developer deletes a bug": (
        lambda c, t: bugs.delete_bug(c, actor(t.dev), t.bug.id),
        Forbidden,
    ),
    "developer edits another's comment": (
        lambda c, t: comments.update_comment(
            c, actor(t.dev), t.comment.id, CommentUpdate(content="mine now")
        ),
        Forbidden,
    ),
    "reporter assigns": (
        lambda c, t: bugs.assign_bug(
            c, actor(t.reporter), t.bug.id, BugAssign(assignee_id=t.dev2.id)
        ),
        Forbidden,
    ),
    "reporter creates a bug with an assignee": (
        lambda c, t: bugs.create_bug(
            c,
            actor(t.reporter),
            BugCreate(project_id=t.project.id, title="x", assignee_id=t.dev.id),
        ),
        Forbidden,
    ),
    "developer removes a member": (
        lambda c, t: projects.remove_member(c, actor(t.dev), t.project.id, t.dev2.id),
        Forbidden,
    ),
    "outsider updates a bug": (
        lambda c, t: bugs.update_bug(c, actor(t.outsider), t.bug.id, BugUpdate(title="hi")),
        NotFound,
    ),
    "outsider comments": (
        lambda c, t: comments.create_comment(
            c, actor(t.outsider), t.bug.id, CommentCreate(content="hi")
        ),
        NotFound,
    ),
    "unknown bug": (
        lambda c, t: bugs.update_bug(c, t.admin, 999_999, BugUpdate(title="ghost")),
        NotFound,
    ),
    "unknown user": (
        lambda c, t: users.delete_user(c, t.admin, 999_999),
        NotFound,
    ),
    "unknown project": (
        lambda c, t: bugs.create_bug(c, t.admin, BugCreate(project_id=999_999, title="x")),
        NotFound,
    ),
    "unknown comment": (
        lambda c, t: comments.delete_comment(c, t.admin, 999_999),
        NotFound,
    ),
    "removing a non-member": (
        lambda c, t: projects.remove_member(c, t.admin, t.project.id, t.outsider.id),
        NotFound,
    ),
    "someone else's notification": (_mark_someone_elses_notification, NotFound),
    "duplicate username": (
        lambda c, t: users.create_user(
            c,
            t.admin,
            UserCreate(username=t.dev.username, email="other@example.com", password=PASSWORD),
        ),
        Conflict,
    ),
    "duplicate email in another case": (
        lambda c, t: users.create_user(
            c,
            t.admin,
            UserCreate(username="other", email=t.dev.email.upper(), password=PASSWORD),
        ),
        Conflict,
    ),
    "renaming a user to a taken name": (
        lambda c, t: users.update_user(c, t.admin, t.dev.id, UserUpdate(username=t.dev2.username)),
        Conflict,
    ),
    "duplicate project name": (
        lambda c, t: projects.create_project(c, t.admin, ProjectCreate(name=t.project.name)),
        Conflict,
    ),
    "adding an existing member": (
        lambda c, t: projects.add_member(c, t.admin, t.project.id, MembershipAdd(user_id=t.dev.id)),
        Conflict,
    ),
    "admin deletes themselves": (
        lambda c, t: users.delete_user(c, t.admin, t.admin.user_id),
        Conflict,
    ),
    "admin changes their own role": (
        lambda c, t: users.update_user(
            c, t.admin, t.admin.user_id, UserUpdate(role=Role.DEVELOPER)
        ),
        Conflict,
    ),
    "assigning a non-member": (
        lambda c, t: bugs.assign_bug(
            c, actor(t.manager), t.bug.id, BugAssign(assignee_id=t.outsider.id)
        ),
        Conflict,
    ),
    "creating a bug for a non-member": (
        lambda c, t: bugs.create_bug(
            c,
            actor(t.dev),
            BugCreate(project_id=t.project.id, title="x", assignee_id=t.outsider.id),
        ),
        Conflict,
    ),
    "assigning an unknown user": (
        lambda c, t: bugs.assign_bug(c, t.admin, t.bug.id, BugAssign(assignee_id=999_999)),
        Conflict,
    ),
    "adding an unknown user": (
        lambda c, t: projects.add_member(c, t.admin, t.project.id, MembershipAdd(user_id=999_999)),
        Conflict,
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_failed_action_writes_nothing(ctx: ServiceContext, team: Team, case: str) -> None:
    attempt, error = FAILURES[case]
    async with writes_nothing(ctx):
        with pytest.raises(error):
            await attempt(ctx, team)


async def test_renaming_a_project_to_a_taken_name_fails_and_writes_nothing(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    other = await factory.project(name="Other")
    async with writes_nothing(ctx):
        with pytest.raises(Conflict):
            await projects.update_project(
                ctx, team.admin, other.id, ProjectUpdate(name=team.project.name)
            )


async def test_assigning_a_suspended_member_fails_and_writes_nothing(
    ctx: ServiceContext, team: Team
) -> None:
    await users.change_user_status(
        ctx, team.admin, team.dev2.id, UserStatusChange(status=UserStatus.SUSPENDED)
    )
    async with writes_nothing(ctx):
        with pytest.raises(Conflict):
            await bugs.assign_bug(
                ctx, actor(team.manager), team.bug.id, BugAssign(assignee_id=team.dev2.id)
            )


async def test_a_rolled_back_transaction_leaves_neither_rows_nor_events(
    ctx: ServiceContext, team: Team
) -> None:
    async with writes_nothing(ctx):
        with pytest.raises(RuntimeError, match="boom"):
            async with ctx.db.transaction() as tx:
                now = ctx.clock()
                bug = await tx.bugs.insert(
                    {
                        "project_id": team.project.id,
                        "title": "half-made",
                        "description": "",
                        "status": "open",
                        "priority": "low",
                        "reporter_id": team.reporter.id,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                await tx.outbox.emit(bug_event(EventName.CREATED, bug))
                # Inside the transaction the row exists; its event is written with the
                # commit (the transaction's last statement), so it has no id yet.
                assert await tx.bugs.get(bug.id) is not None
                assert tx.outbox.events == []
                raise RuntimeError("boom")


async def test_a_database_error_mid_transaction_rolls_back_earlier_events(
    ctx: ServiceContext, team: Team
) -> None:
    async with writes_nothing(ctx):
        # A unique violation reaches the caller as `conflict` (a lost race), never as a 500.
        with pytest.raises(Conflict):
            async with ctx.db.transaction() as tx:
                now = ctx.clock()
                values = {"name": "Fresh", "description": "", "created_at": now, "updated_at": now}
                project = await tx.projects.insert(values)
                await tx.outbox.emit(project_event(EventName.CREATED, project))
                await tx.projects.insert({**values, "name": team.project.name})  # unique


async def test_event_ids_keep_increasing_after_a_rollback(ctx: ServiceContext, team: Team) -> None:
    mark = await last_event_id(ctx)
    with pytest.raises(RuntimeError):
        async with ctx.db.transaction() as tx:
            await tx.outbox.emit(project_event(EventName.UPDATED, team.project))
            raise RuntimeError("abandon")
    result = await projects.update_project(
        ctx, actor(team.manager), team.project.id, ProjectUpdate(description="after")
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("project", "updated")]


# ---- the whole catalog ------------------------------------------------------------------


async def test_a_bug_lifecycle_covers_every_spec_event_in_order(
    ctx: ServiceContext, factory: Factory, clock: FakeClock
) -> None:
    """Every event of the catalog comes out of some action, ids strictly increasing,
    and each action's `Result.events` is exactly its slice of the outbox."""
    admin = await factory.admin()
    start = await last_event_id(ctx)
    seen: list[Any] = []

    async def act(awaitable: Awaitable[Any]) -> Any:
        mark = await last_event_id(ctx)
        result = await awaitable
        seen.extend(await written_by(ctx, result, mark))
        return result.value

    manager = await act(
        users.create_user(
            ctx,
            admin,
            UserCreate(
                username="mgr", email="mgr@example.com", password=PASSWORD, role=Role.MANAGER
            ),
        )
    )
    dev = await act(
        users.create_user(
            ctx,
            admin,
            UserCreate(
                username="dev", email="dev@example.com", password=PASSWORD, role=Role.DEVELOPER
            ),
        )
    )
    await act(users.update_user(ctx, admin, dev.id, UserUpdate(email="dev2@example.com")))
    project = await act(projects.create_project(ctx, actor(manager), ProjectCreate(name="P")))
    await act(
        projects.update_project(ctx, actor(manager), project.id, ProjectUpdate(description="d"))
    )
    await act(projects.add_member(ctx, actor(manager), project.id, MembershipAdd(user_id=dev.id)))
    bug = await act(
        bugs.create_bug(ctx, actor(manager), BugCreate(project_id=project.id, title="t"))
    )
    await act(bugs.update_bug(ctx, actor(dev), bug.id, BugUpdate(description="more")))
    await act(bugs.assign_bug(ctx, actor(manager), bug.id, BugAssign(assignee_id=dev.id)))
    comment = await act(
        comments.create_comment(ctx, actor(manager), bug.id, CommentCreate(content="c"))
    )
    await act(comments.update_comment(ctx, actor(manager), comment.id, CommentUpdate(content="e")))
    await act(comments.delete_comment(ctx, actor(manager), comment.id))
    await act(
        bugs.change_bug_status(
            ctx, actor(manager), bug.id, BugStatusChange(status=BugStatus.IN_PROGRESS)
        )
    )
    clock.advance(days=4)
    await act(reminders.send_due_reminders(ctx))
    await act(bugs.unassign_bug(ctx, actor(manager), bug.id))
    await act(bugs.delete_bug(ctx, actor(manager), bug.id))
    await act(projects.remove_member(ctx, actor(manager), project.id, dev.id))
    await act(
        users.change_user_status(ctx, admin, dev.id, UserStatusChange(status=UserStatus.INACTIVE))
    )
    await act(projects.delete_project(ctx, admin, project.id))
    await act(users.delete_user(ctx, admin, dev.id))

    everything = await events_since(ctx, start)
    assert everything == seen
    check_events(everything)
    produced = {(e.type, e.event) for e in everything}
    catalog = {(t, n) for t, names in EVENT_NAMES.items() for n in names}
    missing = sorted(f"{t.value}.{n.value}" for t, n in catalog - produced)
    assert not missing, missing
    # The spec's five types with their 20 events, plus bugstream's own membership events.
    assert set(SPEC_EVENTS) <= catalog
    assert len(SPEC_EVENTS) == 20


async def test_notifications_list_matches_their_events(ctx: ServiceContext, team: Team) -> None:
    """Every notification row has exactly one `notification.*` event with the same payload."""
    everything = await events_since(ctx, 0)
    for user in (team.dev, team.reporter, team.dev2, team.manager):
        rows = await notifications_of(ctx, user)
        announced = [
            e.payload
            for e in everything
            if e.type is EventType.NOTIFICATION and e.user_id == user.id
        ]
        assert [r.to_payload() for r in rows] == announced
    # The team's history: dev was assigned the bug, the reporter got dev2's comment.
    assert [n.type for n in await notifications_of(ctx, team.dev)] == [ASSIGNED, COMMENTED]
    assert [n.type for n in await notifications_of(ctx, team.reporter)] == [COMMENTED]
    unread = await notifications.list_notifications(
        ctx, actor(team.dev), PageRequest(), unread_only=True
    )
    assert unread.total == 2


async def test_a_removed_member_is_not_notified_about_the_project_any_more(
    ctx: ServiceContext, team: Team
) -> None:
    """Project data is visible only to members: a notification quoting the bug's title must not
    reach someone who was removed from the project, though the bug is still assigned to them."""
    await projects.remove_member(ctx, actor(team.manager), team.project.id, team.dev.id)
    before = await notifications_of(ctx, team.dev)
    mark = await last_event_id(ctx)
    result = await bugs.change_bug_status(
        ctx, actor(team.manager), team.bug.id, BugStatusChange(status=BugStatus.IN_PROGRESS)
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("bug_report", "status_changed"), ("notification", "status_changed")]
    await assert_notified(ctx, events[1], team.reporter, STATUS, team.bug)
    assert await notifications_of(ctx, team.dev) == before


async def test_comments_notify_only_reporters_who_still_see_the_project(
    ctx: ServiceContext, factory: Factory, team: Team
) -> None:
    """A reporter removed from the project hears nothing more; an admin reporter, who sees
    every project without being a member, still does."""
    other_admin = await factory.user(Role.ADMIN)
    by_admin = (
        await bugs.create_bug(
            ctx, actor(other_admin), BugCreate(project_id=team.project.id, title="admin's")
        )
    ).value
    await projects.remove_member(ctx, actor(team.manager), team.project.id, team.reporter.id)
    before = await notifications_of(ctx, team.reporter)

    mark = await last_event_id(ctx)
    result = await comments.create_comment(
        ctx, actor(team.dev2), team.bug.id, CommentCreate(content="still here?")
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("comment", "created"), ("notification", "comment_added")]
    await assert_notified(ctx, events[1], team.dev, COMMENTED, team.bug)
    assert await notifications_of(ctx, team.reporter) == before

    mark = await last_event_id(ctx)
    result = await comments.create_comment(
        ctx, actor(team.dev2), by_admin.id, CommentCreate(content="for the admin")
    )
    events = await written_by(ctx, result, mark)
    assert kinds(events) == [("comment", "created"), ("notification", "comment_added")]
    await assert_notified(ctx, events[1], other_admin, COMMENTED, by_admin)


async def test_a_rolled_back_savepoint_takes_its_events_back(
    ctx: ServiceContext, team: Team
) -> None:
    """Events are written at commit, so a savepoint must drop the ones emitted inside it
    when it rolls back (change capture skips a malformed change this way)."""
    start = await last_event_id(ctx)

    def values(title: str) -> dict[str, Any]:
        now = ctx.clock()
        return {
            "project_id": team.project.id,
            "title": title,
            "description": "",
            "status": "open",
            "priority": "low",
            "reporter_id": team.reporter.id,
            "created_at": now,
            "updated_at": now,
        }

    async with ctx.db.transaction() as tx:
        kept = await tx.bugs.insert(values("kept"))
        await tx.outbox.emit(bug_event(EventName.CREATED, kept))
        with pytest.raises(RuntimeError, match="malformed"):
            async with tx.savepoint():
                dropped = await tx.bugs.insert(values("dropped"))
                await tx.outbox.emit(bug_event(EventName.CREATED, dropped))
                raise RuntimeError("malformed")
        after = await tx.bugs.insert(values("after"))
        await tx.outbox.emit(bug_event(EventName.CREATED, after))
    titles = [e.payload["title"] for e in await events_since(ctx, start)]
    assert titles == ["kept", "after"]
    async with ctx.db.read() as repos:
        rows, _ = await repos.bugs.list([], limit=100, offset=0)
    assert "dropped" not in [bug.title for bug in rows]
