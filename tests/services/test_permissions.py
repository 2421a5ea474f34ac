"""The permission matrix, enforced by the real services: every role x action cell, allowed and
denied; visibility (a non-member sees nothing of a project); notifications; account rules.

How the matrix test works: each `Action` has one or more probes, each a real service call that
the action governs (BUG_UPDATE -> `bugs.update_bug`, ...). Every probe runs, for every role, in
every situation it can meet:

* global actions (users, creating projects, the reminder sweep): once;
* project actions: in a project the actor is a member of, and in one they are not;
* actions on a thing with an owner (a bug's reporter, a comment's author): on the actor's own
  thing and on someone else's, in a member project and in a foreign one (the actor's own things
  there date from before they were removed from that project).

The expected outcome is derived from `MATRIX` (`expected_outcome`), so the test fails when the
services drift from the matrix; `PINNED` states key cells by hand, so a broken matrix cannot
pass just because the services follow it. An allowed mutating call must write events; a denied
call must write none.

Backends: the exhaustive matrix (5 roles x 21 actions, every situation: 105 tests) runs on
SQLite only (about 10 s; on PostgreSQL it took another 19 s), the permission checks being the
same Python on both backends. PostgreSQL runs a representative subset: the pinned cells and the
visibility, notification and account-rule tests.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import pytest

from bugstream.domain.enums import BugStatus, Role, UserStatus
from bugstream.domain.errors import Conflict, Forbidden, NotFound
from bugstream.domain.models import (
    BugAssign,
    BugCreate,
    BugFilter,
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
from bugstream.domain.permissions import MATRIX, Action, Scope
from bugstream.services import bugs, comments, notifications, projects, reminders, users
from bugstream.services.context import Actor, ServiceContext
from bugstream.store.outbox import latest_event_id
from tests.support.factory import PASSWORD, Factory

NON_ADMINS = [r for r in Role if r is not Role.ADMIN]
PAGE = PageRequest()
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

Outcome = Literal["ok", "forbidden", "not_found"]


# --- situations and the world they happen in -------------------------------------------------


class Place(enum.Enum):
    GLOBAL = "global"  # not about a project
    MEMBER = "member"  # a project the actor is a member of
    FOREIGN = "foreign"  # a project the actor is not (or no longer) a member of


@dataclass(frozen=True)
class Situation:
    place: Place
    own: bool = False  # the bug report / comment acted on is the actor's own

    def __str__(self) -> str:
        if self.place is Place.GLOBAL:
            return "global"
        return f"{self.place.value}/{'own' if self.own else 'other'}"


GLOBAL = Situation(Place.GLOBAL)
MEMBER = Situation(Place.MEMBER)
FOREIGN = Situation(Place.FOREIGN)
MEMBER_OWN = Situation(Place.MEMBER, own=True)
FOREIGN_OWN = Situation(Place.FOREIGN, own=True)

Kind = Literal["global", "project", "owned"]
SITUATIONS: dict[Kind, tuple[Situation, ...]] = {
    "global": (GLOBAL,),
    "project": (MEMBER, FOREIGN),
    "owned": (MEMBER_OWN, MEMBER, FOREIGN_OWN, FOREIGN),
}


@dataclass
class World:
    """An actor with `role`, a member project and a foreign project (shared with `peer`, a
    developer), in each a bug and a comment of the actor's and of the peer's; and `stranger`, an
    account in no project (the target of user actions and new memberships)."""

    ctx: ServiceContext
    admin: Actor
    actor: Actor
    peer: User
    stranger: User
    projects: dict[Place, Project]
    bugs: dict[tuple[Place, bool], BugReport]
    comments: dict[tuple[Place, bool], Comment]
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def project(self, s: Situation) -> Project:
        return self.projects[s.place]

    def bug(self, s: Situation) -> BugReport:
        return self.bugs[s.place, s.own]

    def comment(self, s: Situation) -> Comment:
        return self.comments[s.place, s.own]

    def unique(self, prefix: str) -> str:
        return f"{prefix}{next(self.seq)}"


async def build_world(factory: Factory, role: Role) -> World:
    ctx = factory.ctx
    admin = await factory.admin()
    # The actor starts as a reporter, so that every role can own a bug report and a comment;
    # an admin then gives them `role`.
    me = await factory.user(Role.REPORTER)
    peer = await factory.user(Role.DEVELOPER)
    stranger = await factory.user(Role.VIEWER)
    places = {Place.MEMBER: await factory.project(me, peer)}
    places[Place.FOREIGN] = await factory.project(me, peer)
    bug_map: dict[tuple[Place, bool], BugReport] = {}
    comment_map: dict[tuple[Place, bool], Comment] = {}
    for place, project in places.items():
        bug_map[place, True] = await factory.bug(project, me, title="mine")
        bug_map[place, False] = theirs = await factory.bug(project, peer, title="theirs")
        comment_map[place, True] = await factory.comment(theirs, me, "my comment")
        comment_map[place, False] = await factory.comment(theirs, peer, "their comment")
    await projects.remove_member(ctx, admin, places[Place.FOREIGN].id, me.id)
    if role is not Role.REPORTER:
        await users.update_user(ctx, admin, me.id, UserUpdate(role=role))
    return World(
        ctx=ctx,
        admin=admin,
        actor=Actor(user_id=me.id, role=role),
        peer=peer,
        stranger=stranger,
        projects=places,
        bugs=bug_map,
        comments=comment_map,
    )


# --- probes: the service calls each action governs -------------------------------------------

Call = Callable[[World, Situation], Awaitable[object]]


@dataclass(frozen=True)
class Probe:
    name: str
    kind: Kind
    call: Call
    #: Extra actions the call needs besides the one it is listed under.
    also_needs: tuple[Action, ...] = ()
    #: Whether an allowed call changes something (and so must write events).
    mutates: bool = True
    #: What a refused call answers (reading another user answers not_found, not forbidden).
    denied_as: Outcome = "forbidden"
    #: Set-up done by an admin before the call (not part of what is checked).
    prepare: Call | None = None


async def _assign_peer(w: World, s: Situation) -> None:
    await bugs.assign_bug(w.ctx, w.admin, w.bug(s).id, BugAssign(assignee_id=w.peer.id))


def _new_user(w: World) -> UserCreate:
    name = w.unique("newuser")
    return UserCreate(username=name, email=f"{name}@example.com", password=PASSWORD)


PROBES: dict[Action, list[Probe]] = {
    Action.USER_LIST: [
        Probe(
            "list_users",
            "global",
            lambda w, s: users.list_users(w.ctx, w.actor, PAGE),
            mutates=False,
        ),
        Probe(
            "get_user",
            "global",
            lambda w, s: users.get_user(w.ctx, w.actor, w.stranger.id),
            mutates=False,
            denied_as="not_found",
        ),
    ],
    Action.USER_CREATE: [
        Probe("create_user", "global", lambda w, s: users.create_user(w.ctx, w.actor, _new_user(w)))
    ],
    Action.USER_UPDATE: [
        Probe(
            "update_user",
            "global",
            lambda w, s: users.update_user(
                w.ctx, w.actor, w.stranger.id, UserUpdate(email="changed@example.com")
            ),
        )
    ],
    Action.USER_CHANGE_ROLE: [
        Probe(
            "update_user_role",
            "global",
            lambda w, s: users.update_user(
                w.ctx, w.actor, w.stranger.id, UserUpdate(role=Role.DEVELOPER)
            ),
        )
    ],
    Action.USER_CHANGE_STATUS: [
        Probe(
            "change_user_status",
            "global",
            lambda w, s: users.change_user_status(
                w.ctx, w.actor, w.stranger.id, UserStatusChange(status=UserStatus.SUSPENDED)
            ),
        )
    ],
    Action.USER_DELETE: [
        Probe(
            "delete_user", "global", lambda w, s: users.delete_user(w.ctx, w.actor, w.stranger.id)
        )
    ],
    Action.PROJECT_CREATE: [
        Probe(
            "create_project",
            "global",
            lambda w, s: projects.create_project(
                w.ctx, w.actor, ProjectCreate(name=w.unique("new project "))
            ),
        )
    ],
    Action.PROJECT_READ: [
        Probe(
            "get_project",
            "project",
            lambda w, s: projects.get_project(w.ctx, w.actor, w.project(s).id),
            mutates=False,
        ),
        Probe(
            "list_members",
            "project",
            lambda w, s: projects.list_members(w.ctx, w.actor, w.project(s).id),
            mutates=False,
        ),
    ],
    Action.PROJECT_UPDATE: [
        Probe(
            "update_project",
            "project",
            lambda w, s: projects.update_project(
                w.ctx, w.actor, w.project(s).id, ProjectUpdate(description="changed")
            ),
        )
    ],
    Action.PROJECT_DELETE: [
        Probe(
            "delete_project",
            "project",
            lambda w, s: projects.delete_project(w.ctx, w.actor, w.project(s).id),
        )
    ],
    Action.MEMBER_MANAGE: [
        Probe(
            "add_member",
            "project",
            lambda w, s: projects.add_member(
                w.ctx, w.actor, w.project(s).id, MembershipAdd(user_id=w.stranger.id)
            ),
        ),
        Probe(
            "remove_member",
            "project",
            lambda w, s: projects.remove_member(w.ctx, w.actor, w.project(s).id, w.peer.id),
        ),
    ],
    Action.BUG_READ: [
        Probe(
            "get_bug",
            "owned",
            lambda w, s: bugs.get_bug(w.ctx, w.actor, w.bug(s).id),
            mutates=False,
        ),
        Probe(
            "list_bugs_of_project",
            "project",
            lambda w, s: bugs.list_bugs(
                w.ctx, w.actor, BugFilter(project_id=w.project(s).id), PAGE
            ),
            mutates=False,
        ),
        Probe(
            "list_comments",
            "owned",
            lambda w, s: comments.list_comments(w.ctx, w.actor, w.bug(s).id, PAGE),
            mutates=False,
        ),
        Probe(
            "get_comment",
            "owned",
            lambda w, s: comments.get_comment(w.ctx, w.actor, w.comment(s).id),
            mutates=False,
        ),
    ],
    Action.BUG_CREATE: [
        Probe(
            "create_bug",
            "project",
            lambda w, s: bugs.create_bug(
                w.ctx, w.actor, BugCreate(project_id=w.project(s).id, title="new")
            ),
        ),
        Probe(
            "create_bug_assigned",
            "project",
            lambda w, s: bugs.create_bug(
                w.ctx,
                w.actor,
                BugCreate(project_id=w.project(s).id, title="new", assignee_id=w.peer.id),
            ),
            also_needs=(Action.BUG_ASSIGN,),
        ),
    ],
    Action.BUG_UPDATE: [
        Probe(
            "update_bug",
            "owned",
            lambda w, s: bugs.update_bug(w.ctx, w.actor, w.bug(s).id, BugUpdate(title="edited")),
        )
    ],
    Action.BUG_DELETE: [
        Probe("delete_bug", "owned", lambda w, s: bugs.delete_bug(w.ctx, w.actor, w.bug(s).id))
    ],
    Action.BUG_CHANGE_STATUS: [
        Probe(
            "change_bug_status",
            "owned",
            lambda w, s: bugs.change_bug_status(
                w.ctx, w.actor, w.bug(s).id, BugStatusChange(status=BugStatus.IN_PROGRESS)
            ),
        )
    ],
    Action.BUG_ASSIGN: [
        # Runs first: the bugs are still unassigned, so an allowed assignment changes something.
        Probe(
            "assign_bug",
            "owned",
            lambda w, s: bugs.assign_bug(
                w.ctx, w.actor, w.bug(s).id, BugAssign(assignee_id=w.peer.id)
            ),
        ),
        Probe(
            "unassign_bug",
            "owned",
            lambda w, s: bugs.unassign_bug(w.ctx, w.actor, w.bug(s).id),
            prepare=_assign_peer,
        ),
    ],
    Action.COMMENT_CREATE: [
        Probe(
            "create_comment",
            "project",
            lambda w, s: comments.create_comment(
                w.ctx, w.actor, w.bug(s).id, CommentCreate(content="hello")
            ),
        )
    ],
    Action.COMMENT_UPDATE: [
        Probe(
            "update_comment",
            "owned",
            lambda w, s: comments.update_comment(
                w.ctx, w.actor, w.comment(s).id, CommentUpdate(content="edited")
            ),
        )
    ],
    Action.COMMENT_DELETE: [
        Probe(
            "delete_comment",
            "owned",
            lambda w, s: comments.delete_comment(w.ctx, w.actor, w.comment(s).id),
        )
    ],
    Action.REMINDER_SEND: [
        Probe(
            "run_reminders",
            "global",
            lambda w, s: reminders.run_reminders(w.ctx, w.actor),
            mutates=False,  # nothing is due yet: the sweep sends nothing
        ),
        Probe(
            "remind_now",
            "owned",
            lambda w, s: reminders.remind_now(w.ctx, w.actor, w.bug(s).id),
            prepare=_assign_peer,
        ),
    ],
}

PROBE_BY_NAME: dict[str, tuple[Action, Probe]] = {
    p.name: (action, p) for action, probes in PROBES.items() for p in probes
}


# --- expectations, derived from the matrix ---------------------------------------------------


def granted(role: Role, action: Action, s: Situation) -> bool:
    """What MATRIX grants `role` for `action` in situation `s` (admins need no membership)."""
    scope = MATRIX[role].get(action)
    in_project = s.place is Place.MEMBER or role is Role.ADMIN
    if scope is None:
        return False
    if scope is Scope.ANYWHERE:
        return True
    if scope is Scope.IN_MEMBER_PROJECT:
        return in_project
    return in_project and s.own


def expected_outcome(role: Role, action: Action, probe: Probe, s: Situation) -> Outcome:
    # Visibility first: a project the actor may not see (and all in it) does not exist for them.
    if s.place is Place.FOREIGN and role is not Role.ADMIN:
        return "not_found"
    if all(granted(role, a, s) for a in (action, *probe.also_needs)):
        return "ok"
    return probe.denied_as


async def _last_event(ctx: ServiceContext) -> int:
    async with ctx.db.read() as repos:
        return await latest_event_id(repos.conn)


async def run_probe(w: World, probe: Probe, s: Situation) -> Outcome:
    """Run the call; its outcome. Fails if a refused call wrote events, or an allowed mutating
    call wrote none."""
    if probe.prepare is not None:
        await probe.prepare(w, s)
    before = await _last_event(w.ctx)
    outcome: Outcome = "ok"
    try:
        await probe.call(w, s)
    except Forbidden:
        outcome = "forbidden"
    except NotFound:
        outcome = "not_found"
    after = await _last_event(w.ctx)
    if outcome != "ok" or not probe.mutates:
        assert after == before, f"{probe.name} ({s}) -> {outcome} but wrote events"
    else:
        assert after > before, f"{probe.name} ({s}) was allowed but wrote no event"
    return outcome


# --- the matrix ------------------------------------------------------------------------------


def test_every_action_has_probes_for_every_scope() -> None:
    assert set(PROBES) == set(Action)
    assert set(MATRIX) == set(Role)
    for role, row in MATRIX.items():
        for action, scope in row.items():
            kinds = {p.kind for p in PROBES[action]}
            if scope is Scope.OWN:
                # An OWN grant is only testable on a probe that acts on someone's thing.
                assert "owned" in kinds, f"{role} {action}: OWN but no probe on an owned thing"


@SQLITE_ONLY
@pytest.mark.parametrize("action", list(Action), ids=str)
@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_matrix_cell(factory: Factory, role: Role, action: Action) -> None:
    """Every probe of `action`, in every situation, answers what MATRIX says for `role`."""
    world = await build_world(factory, role)
    mismatches = []
    for probe in PROBES[action]:
        for s in SITUATIONS[probe.kind]:
            want = expected_outcome(role, action, probe, s)
            got = await run_probe(world, probe, s)
            if got != want:
                mismatches.append(f"{probe.name} ({s}): expected {want}, got {got}")
    assert mismatches == []


# Key cells by hand: these hold whatever MATRIX says (a broken matrix fails here).
PINNED: list[tuple[Role, str, Situation, Outcome]] = [
    (Role.VIEWER, "get_bug", MEMBER, "ok"),
    (Role.VIEWER, "create_bug", MEMBER, "forbidden"),
    (Role.VIEWER, "create_comment", MEMBER, "forbidden"),
    (Role.VIEWER, "update_comment", MEMBER_OWN, "forbidden"),
    (Role.REPORTER, "create_bug", MEMBER, "ok"),
    (Role.REPORTER, "update_bug", MEMBER_OWN, "ok"),
    (Role.REPORTER, "update_bug", MEMBER, "forbidden"),
    (Role.REPORTER, "update_bug", FOREIGN_OWN, "not_found"),
    (Role.REPORTER, "change_bug_status", MEMBER_OWN, "forbidden"),
    (Role.REPORTER, "assign_bug", MEMBER_OWN, "forbidden"),
    (Role.REPORTER, "delete_comment", MEMBER_OWN, "ok"),
    (Role.REPORTER, "delete_comment", MEMBER, "forbidden"),
    (Role.DEVELOPER, "assign_bug", MEMBER, "ok"),
    (Role.DEVELOPER, "change_bug_status", MEMBER, "ok"),
    (Role.DEVELOPER, "update_bug", MEMBER, "ok"),
    (Role.DEVELOPER, "delete_bug", MEMBER_OWN, "forbidden"),
    (Role.DEVELOPER, "update_comment", MEMBER, "forbidden"),
    (Role.DEVELOPER, "add_member", MEMBER, "forbidden"),
    (Role.DEVELOPER, "create_project", GLOBAL, "forbidden"),
    (Role.MANAGER, "add_member", MEMBER, "ok"),
    (Role.MANAGER, "remove_member", MEMBER, "ok"),
    (Role.MANAGER, "add_member", FOREIGN, "not_found"),
    (Role.MANAGER, "update_project", MEMBER, "ok"),
    (Role.MANAGER, "delete_project", MEMBER, "forbidden"),
    (Role.MANAGER, "delete_bug", MEMBER, "ok"),
    (Role.MANAGER, "create_project", GLOBAL, "ok"),
    (Role.MANAGER, "remind_now", MEMBER, "ok"),
    (Role.MANAGER, "run_reminders", GLOBAL, "forbidden"),
    (Role.MANAGER, "create_user", GLOBAL, "forbidden"),
    (Role.MANAGER, "list_users", GLOBAL, "forbidden"),
    (Role.ADMIN, "get_bug", FOREIGN, "ok"),
    (Role.ADMIN, "delete_project", FOREIGN, "ok"),
    (Role.ADMIN, "add_member", FOREIGN, "ok"),
    (Role.ADMIN, "delete_bug", FOREIGN, "ok"),
    (Role.ADMIN, "update_comment", FOREIGN, "ok"),
    (Role.ADMIN, "remind_now", FOREIGN, "ok"),
    (Role.ADMIN, "run_reminders", GLOBAL, "ok"),
    (Role.ADMIN, "delete_user", GLOBAL, "ok"),
    (Role.ADMIN, "update_user_role", GLOBAL, "ok"),
]


@pytest.mark.parametrize(
    ("role", "probe_name", "situation", "want"),
    PINNED,
    ids=[f"{r}-{p}-{s}" for r, p, s, _ in PINNED],
)
async def test_pinned_cell(
    factory: Factory, role: Role, probe_name: str, situation: Situation, want: Outcome
) -> None:
    _, probe = PROBE_BY_NAME[probe_name]
    world = await build_world(factory, role)
    assert await run_probe(world, probe, situation) == want


# --- visibility ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", NON_ADMINS, ids=str)
async def test_non_member_cannot_read_another_projects_bugs(factory: Factory, role: Role) -> None:
    ctx = factory.ctx
    outsider = await factory.user(role)
    insider = await factory.user(Role.DEVELOPER)
    theirs = await factory.project(insider)
    ours = await factory.project(outsider, insider)
    hidden = await factory.bug(theirs, insider, title="hidden")
    visible = await factory.bug(ours, insider, title="visible")
    comment = await factory.comment(hidden, insider)
    me = Factory.actor(outsider)

    with pytest.raises(NotFound):
        await bugs.get_bug(ctx, me, hidden.id)
    with pytest.raises(NotFound):
        await bugs.list_bugs(ctx, me, BugFilter(project_id=theirs.id), PAGE)
    with pytest.raises(NotFound):
        await projects.get_project(ctx, me, theirs.id)
    with pytest.raises(NotFound):
        await projects.list_members(ctx, me, theirs.id)
    with pytest.raises(NotFound):
        await comments.list_comments(ctx, me, hidden.id, PAGE)
    with pytest.raises(NotFound):
        await comments.get_comment(ctx, me, comment.id)

    listed = await bugs.list_bugs(ctx, me, BugFilter(), PAGE)
    assert [b.id for b in listed.items] == [visible.id]
    assert listed.total == 1
    by_assignee = await bugs.list_bugs(ctx, me, BugFilter(assignee_id=insider.id), PAGE)
    assert by_assignee.items == []
    assert [p.id for p in (await projects.list_projects(ctx, me, PAGE)).items] == [ours.id]

    # Once a member, they see it; removed again, it is gone.
    admin = await factory.admin()
    await projects.add_member(ctx, admin, theirs.id, MembershipAdd(user_id=outsider.id))
    assert (await bugs.get_bug(ctx, me, hidden.id)).id == hidden.id
    await projects.remove_member(ctx, admin, theirs.id, outsider.id)
    with pytest.raises(NotFound):
        await bugs.get_bug(ctx, me, hidden.id)


async def test_admin_sees_every_project_without_membership(factory: Factory) -> None:
    ctx = factory.ctx
    insider = await factory.user(Role.DEVELOPER)
    first = await factory.project(insider)
    second = await factory.project(insider)
    bug_one = await factory.bug(first, insider)
    bug_two = await factory.bug(second, insider)
    comment = await factory.comment(bug_two, insider)
    other_admin = Factory.actor(await factory.user(Role.ADMIN))  # a member of nothing

    listed = await bugs.list_bugs(ctx, other_admin, BugFilter(), PAGE)
    assert {b.id for b in listed.items} == {bug_one.id, bug_two.id}
    found = await projects.list_projects(ctx, other_admin, PAGE)
    assert {p.id for p in found.items} == {first.id, second.id}
    assert (await projects.get_project(ctx, other_admin, second.id)).id == second.id
    assert (await bugs.get_bug(ctx, other_admin, bug_two.id)).id == bug_two.id
    assert (await comments.get_comment(ctx, other_admin, comment.id)).id == comment.id
    page = await comments.list_comments(ctx, other_admin, bug_two.id, PAGE)
    assert [c.id for c in page.items] == [comment.id]


# --- notifications ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_notifications_are_readable_only_by_their_owner(factory: Factory, role: Role) -> None:
    ctx = factory.ctx
    owner = await factory.user(Role.DEVELOPER)
    other = await factory.user(role)
    project = await factory.project(owner, other)  # even a fellow member cannot read them
    await factory.bug(project, owner, assignee=owner)  # an admin assigns: owner is notified
    mine = await notifications.list_notifications(ctx, Factory.actor(owner), PAGE)
    assert len(mine.items) == 1
    note = mine.items[0]
    intruder = Factory.actor(other)

    with pytest.raises(NotFound):
        await notifications.get_notification(ctx, intruder, note.id)
    with pytest.raises(NotFound):
        await notifications.mark_read(ctx, intruder, note.id)
    assert note.id not in {
        n.id for n in (await notifications.list_notifications(ctx, intruder, PAGE)).items
    }
    assert note.id not in (await notifications.mark_all_read(ctx, intruder)).value

    still = await notifications.get_notification(ctx, Factory.actor(owner), note.id)
    assert still.read is False
    marked = await notifications.mark_read(ctx, Factory.actor(owner), note.id)
    assert marked.value.read is True


# --- account rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_everyone_may_edit_their_own_account(factory: Factory, role: Role) -> None:
    ctx = factory.ctx
    user = await factory.user(role)
    me = Factory.actor(user)
    update = UserUpdate(
        username=f"renamed_{role}", email=f"new_{role}@example.com", password="a new secret pass"
    )
    changed = (await users.update_user(ctx, me, user.id, update)).value
    assert (changed.username, changed.email, changed.role) == (
        f"renamed_{role}",
        f"new_{role}@example.com",
        role,
    )
    assert (await users.get_user(ctx, me, user.id)).username == f"renamed_{role}"
    assert (await users.authenticate(ctx, f"renamed_{role}", "a new secret pass")).id == user.id


@pytest.mark.parametrize("role", NON_ADMINS, ids=str)
async def test_non_admins_cannot_change_their_own_role(factory: Factory, role: Role) -> None:
    ctx = factory.ctx
    user = await factory.user(role)
    me = Factory.actor(user)
    with pytest.raises(Forbidden):
        await users.update_user(ctx, me, user.id, UserUpdate(role=Role.ADMIN))
    with pytest.raises(Forbidden):  # not even together with an allowed change
        await users.update_user(ctx, me, user.id, UserUpdate(username="sneaky", role=Role.ADMIN))
    with pytest.raises(Forbidden):
        await users.change_user_status(
            ctx, me, user.id, UserStatusChange(status=UserStatus.INACTIVE)
        )
    with pytest.raises(Forbidden):
        await users.delete_user(ctx, me, user.id)
    after = await users.get_user(ctx, me, user.id)
    assert (after.username, after.role, after.status) == (user.username, role, UserStatus.ACTIVE)


async def test_admins_cannot_lock_themselves_out(factory: Factory) -> None:
    ctx = factory.ctx
    admin_user = await factory.user(Role.ADMIN)
    admin = Factory.actor(admin_user)
    before = await _last_event(ctx)
    with pytest.raises(Conflict):
        await users.update_user(ctx, admin, admin_user.id, UserUpdate(role=Role.VIEWER))
    with pytest.raises(Conflict):
        await users.change_user_status(
            ctx, admin, admin_user.id, UserStatusChange(status=UserStatus.SUSPENDED)
        )
    with pytest.raises(Conflict):
        await users.delete_user(ctx, admin, admin_user.id)
    assert await _last_event(ctx) == before
    after = await users.get_user(ctx, admin, admin_user.id)
    assert (after.role, after.status) == (Role.ADMIN, UserStatus.ACTIVE)

    # ... but another admin may do all three to them.
    other = await factory.admin()
    demoted = await users.update_user(ctx, other, admin_user.id, UserUpdate(role=Role.MANAGER))
    assert demoted.value.role is Role.MANAGER
    await users.change_user_status(
        ctx, other, admin_user.id, UserStatusChange(status=UserStatus.SUSPENDED)
    )
    await users.delete_user(ctx, other, admin_user.id)
    with pytest.raises(NotFound):
        await users.get_user(ctx, other, admin_user.id)


@pytest.mark.parametrize("role", list(Role), ids=str)
async def test_only_admins_list_and_read_other_users(factory: Factory, role: Role) -> None:
    ctx = factory.ctx
    user = await factory.user(role)
    someone = await factory.user(Role.DEVELOPER)
    me = Factory.actor(user)
    assert (await users.get_user(ctx, me, user.id)).id == user.id  # oneself: always
    if role is Role.ADMIN:
        assert (await users.get_user(ctx, me, someone.id)).id == someone.id
        listed = await users.list_users(ctx, me, PAGE)
        assert {user.id, someone.id} <= {u.id for u in listed.items}
    else:
        with pytest.raises(NotFound):  # another account's existence does not leak
            await users.get_user(ctx, me, someone.id)
        with pytest.raises(Forbidden):
            await users.list_users(ctx, me, PAGE)
        with pytest.raises(Forbidden):
            await users.update_user(ctx, me, someone.id, UserUpdate(username="taken_over"))
    with pytest.raises(NotFound):  # an unknown id: not_found for everyone
        await users.get_user(ctx, me, 999_999)
