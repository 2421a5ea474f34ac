"""PostgreSQL change capture: SQL from another program becomes the API's own events.

Rows are changed with plain SQL on a connection of its own (as psql or another service would),
against a live server whose runtime runs the capture worker. Each change must produce exactly
the events the API writes for the same change (types, names, payload fields, routing), and
reach the same audiences: members of the project, never the others. Changes made through the
API must not be captured a second time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select

from bugstream.domain.enums import BugStatus, Priority, Role, UserStatus
from bugstream.domain.events import Event
from bugstream.domain.models import (
    BugAssign,
    BugCreate,
    BugReport,
    BugStatusChange,
    BugUpdate,
    CommentCreate,
    CommentUpdate,
    MembershipAdd,
    ProjectCreate,
    ProjectUpdate,
    User,
    UserCreate,
    UserStatusChange,
    UserUpdate,
)
from bugstream.services import bugs, comments, projects, users
from bugstream.services.capture import process_captured_changes
from bugstream.services.capture_backlog import oldest_pending_age
from bugstream.services.context import ServiceContext
from bugstream.store.tables import captured_changes
from tests.support.events import check_events, events_since, kinds, last_event_id
from tests.support.factory import Factory
from tests.support.live import Client, LiveServer, live_server
from tests.support.metrics import scrape, value

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
]

SETTLE_SECONDS = 10.0
Shape = tuple[str, str, frozenset[str], bool, bool]


@asynccontextmanager
async def psql(ctx: ServiceContext) -> AsyncIterator[Any]:
    """A plain connection to the same database, outside bugstream (autocommit)."""
    url = ctx.db.engine.url.set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        yield conn
    finally:
        await conn.close()


async def pending_changes(ctx: ServiceContext) -> int:
    async with ctx.db.read() as repos:
        count = await repos.conn.scalar(select(func.count()).select_from(captured_changes))
    return int(count or 0)


async def captured(ctx: ServiceContext, after_id: int) -> list[Event]:
    """The events written for the outside changes made since `after_id`, once the capture
    worker has processed them all (it deletes what it processed in the same transaction)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while await pending_changes(ctx):
        assert loop.time() < deadline, "the capture worker did not process the changes"
        await asyncio.sleep(0.02)
    events = await events_since(ctx, after_id)
    check_events(events)
    return events


def shape(event: Event) -> Shape:
    """What must match between a captured change and the API's: kind, payload fields, and
    which routing keys are set."""
    return (
        event.type.value,
        event.event.value,
        frozenset(event.payload),
        event.project_id is not None,
        event.user_id is not None,
    )


def shapes(events: Sequence[Event]) -> list[Shape]:
    return [shape(e) for e in events]


async def stream(client: Client) -> list[tuple[str, str, int]]:
    """(type, event, event_id) of every event the client got, until it is quiet."""
    return [(m["type"], m["event"], m["event_id"]) for m in await client.events(quiet=0.4)]


def project_of(message: dict[str, Any]) -> int | None:
    payload = message["payload"]
    if message["type"] == "project":
        return int(payload["id"])
    return payload.get("project_id") if message["type"] != "notification" else None


def ids(events: Sequence[Event]) -> list[int]:
    return [e.event_id for e in events]


class World:
    """An admin, a project with a reporter and an assignee, and an outsider."""

    def __init__(self, factory: Factory) -> None:
        self.factory = factory
        self.ctx = factory.ctx

    async def build(self) -> World:
        f = self.factory
        self.admin_user = await f.user(Role.ADMIN, name="root")
        self.admin = Factory.actor(self.admin_user)
        self.reporter = await f.user(Role.DEVELOPER, name="reporter")
        self.assignee = await f.user(Role.DEVELOPER, name="assignee")
        self.outsider = await f.user(Role.DEVELOPER, name="outsider")
        self.project = await f.project(self.reporter, self.assignee, name="captured")
        return self

    async def twin_bug(self) -> BugReport:
        """A bug made through the API, to compare the API's events with the captured ones."""
        return await self.factory.bug(self.project, self.reporter, assignee=self.assignee)


async def rest_json(live: LiveServer, user: User, path: str) -> Any:
    async with live.http(user) as http:
        response = await http.get(f"/api/v1{path}")
        assert response.status_code == 200, response.text
        return response.json()


async def test_sql_on_bug_reports_gives_the_apis_events_to_the_projects_members(
    factory: Factory,
) -> None:
    w = await World(factory).build()
    ctx = w.ctx
    async with live_server(ctx, change_capture_poll_seconds=0.2) as live:
        reporter_ws = await live.connect(w.reporter)
        assignee_ws = await live.connect(w.assignee)
        outsider_ws = await live.connect(w.outsider)
        admin_ws = await live.connect(w.admin_user)
        start = await last_event_id(ctx)
        async with psql(ctx) as sql:
            # INSERT, with an assignee: created + the assignee's notification.
            mark = await last_event_id(ctx)
            bug_id = await sql.fetchval(
                "INSERT INTO bug_reports (project_id, title, description, status, priority,"
                " assignee_id, reporter_id, created_at, updated_at)"
                " VALUES ($1, 'From psql', 'steps', 'open', 'high', $2, $3, now(), now())"
                " RETURNING id",
                w.project.id,
                w.assignee.id,
                w.reporter.id,
            )
            created = await captured(ctx, mark)
            api = await bugs.create_bug(
                ctx,
                Factory.actor(w.reporter),
                BugCreate(
                    project_id=w.project.id,
                    title="From the API",
                    priority=Priority.HIGH,
                    assignee_id=w.assignee.id,
                ),
            )
            assert shapes(created) == shapes(api.events)
            assert kinds(created) == [("bug_report", "created"), ("notification", "bug_assigned")]
            assert created[0].payload == await rest_json(live, w.admin_user, f"/bugs/{bug_id}")
            assert created[0].project_id == w.project.id
            assert created[1].user_id == w.assignee.id
            notification = await rest_json(
                live, w.assignee, f"/notifications/{created[1].payload['id']}"
            )
            assert created[1].payload == notification
            assert notification["bug_report_id"] == bug_id

            twin = await w.twin_bug()

            # A status change: status_changed + notifications to reporter and assignee.
            mark = await last_event_id(ctx)
            await sql.execute("UPDATE bug_reports SET status = 'in_progress' WHERE id = $1", bug_id)
            status = await captured(ctx, mark)
            api = await bugs.change_bug_status(
                ctx, w.admin, twin.id, BugStatusChange(status=BugStatus.IN_PROGRESS)
            )
            assert shapes(status) == shapes(api.events)
            assert kinds(status) == [
                ("bug_report", "status_changed"),
                ("notification", "status_changed"),
                ("notification", "status_changed"),
            ]
            assert status[0].payload["previous_status"] == "open"
            assert status[0].payload["status"] == "in_progress"
            assert {e.user_id for e in status[1:]} == {w.reporter.id, w.assignee.id}

            # Unassigned, then assigned again (with the notification).
            mark = await last_event_id(ctx)
            await sql.execute("UPDATE bug_reports SET assignee_id = NULL WHERE id = $1", bug_id)
            unassigned = await captured(ctx, mark)
            api = await bugs.unassign_bug(ctx, w.admin, twin.id)
            assert shapes(unassigned) == shapes(api.events)
            assert kinds(unassigned) == [("bug_report", "unassigned")]
            assert unassigned[0].payload["previous_assignee_id"] == w.assignee.id

            mark = await last_event_id(ctx)
            await sql.execute(
                "UPDATE bug_reports SET assignee_id = $2 WHERE id = $1", bug_id, w.reporter.id
            )
            assigned = await captured(ctx, mark)
            api = await bugs.assign_bug(ctx, w.admin, twin.id, BugAssign(assignee_id=w.reporter.id))
            assert shapes(assigned) == shapes(api.events)
            assert kinds(assigned) == [("bug_report", "assigned"), ("notification", "bug_assigned")]
            assert assigned[0].payload["previous_assignee_id"] is None
            assert assigned[1].user_id == w.reporter.id

            # An edit: updated. An internal column only (reminded_at): nothing at all.
            mark = await last_event_id(ctx)
            await sql.execute(
                "UPDATE bug_reports SET title = 'Renamed', updated_at = now() WHERE id = $1",
                bug_id,
            )
            await sql.execute("UPDATE bug_reports SET reminded_at = now() WHERE id = $1", bug_id)
            updated = await captured(ctx, mark)
            api = await bugs.update_bug(ctx, w.admin, twin.id, BugUpdate(title="Renamed"))
            assert shapes(updated) == shapes(api.events)
            assert kinds(updated) == [("bug_report", "updated")]
            assert updated[0].payload["title"] == "Renamed"

            # DELETE: one event with the last state (its comments go with it, silently).
            await sql.execute(
                "INSERT INTO comments (bug_report_id, user_id, content, created_at, updated_at)"
                " VALUES ($1, $2, 'doomed', now(), now())",
                bug_id,
                w.reporter.id,
            )
            await captured(ctx, 0)
            mark = await last_event_id(ctx)
            await sql.execute("DELETE FROM bug_reports WHERE id = $1", bug_id)
            deleted = await captured(ctx, mark)
            await factory.comment(twin, w.reporter, "doomed")
            api = await bugs.delete_bug(ctx, w.admin, twin.id)
            assert shapes(deleted) == shapes(api.events)
            assert kinds(deleted) == [("bug_report", "deleted")]
            assert deleted[0].payload["id"] == bug_id
            assert deleted[0].payload["title"] == "Renamed"

        everything = await events_since(ctx, start)
        project_events = [
            (e.type.value, e.event.value, e.event_id)
            for e in everything
            if e.project_id == w.project.id
        ]

        def personal(user: User) -> list[tuple[str, str, int]]:
            return [
                (e.type.value, e.event.value, e.event_id)
                for e in everything
                if e.project_id == w.project.id or e.user_id == user.id
            ]

        assert await stream(reporter_ws) == personal(w.reporter)
        assert await stream(assignee_ws) == personal(w.assignee)
        assert [m for m in await stream(admin_ws) if m[0] != "notification"] == project_events
        assert await stream(outsider_ws) == []


async def test_sql_on_comments_gives_the_apis_events(factory: Factory) -> None:
    w = await World(factory).build()
    ctx = w.ctx
    bug = await w.twin_bug()
    async with live_server(ctx, change_capture_poll_seconds=0.2) as live:
        assignee_ws = await live.connect(w.assignee)
        outsider_ws = await live.connect(w.outsider)
        start = await last_event_id(ctx)
        async with psql(ctx) as sql:
            mark = await last_event_id(ctx)
            comment_id = await sql.fetchval(
                "INSERT INTO comments (bug_report_id, user_id, content, created_at, updated_at)"
                " VALUES ($1, $2, 'seen from psql', now(), now()) RETURNING id",
                bug.id,
                w.reporter.id,
            )
            created = await captured(ctx, mark)
            api = await comments.create_comment(
                ctx, Factory.actor(w.reporter), bug.id, CommentCreate(content="via the API")
            )
            assert shapes(created) == shapes(api.events)
            # The author (the reporter) is not notified; the assignee is.
            assert kinds(created) == [("comment", "created"), ("notification", "comment_added")]
            assert created[0].payload == {
                **await rest_json(live, w.reporter, f"/comments/{comment_id}"),
                "project_id": w.project.id,
            }
            assert created[1].user_id == w.assignee.id

            mark = await last_event_id(ctx)
            await sql.execute("UPDATE comments SET content = 'edited' WHERE id = $1", comment_id)
            updated = await captured(ctx, mark)
            api = await comments.update_comment(
                ctx, Factory.actor(w.reporter), api.value.id, CommentUpdate(content="edited")
            )
            assert shapes(updated) == shapes(api.events)
            assert kinds(updated) == [("comment", "updated")]
            assert updated[0].payload["content"] == "edited"

            mark = await last_event_id(ctx)
            await sql.execute("DELETE FROM comments WHERE id = $1", comment_id)
            deleted = await captured(ctx, mark)
            api = await comments.delete_comment(ctx, w.admin, api.value.id)
            assert shapes(deleted) == shapes(api.events)
            assert kinds(deleted) == [("comment", "deleted")]
            assert deleted[0].payload["id"] == comment_id

        expected = [
            (e.type.value, e.event.value, e.event_id)
            for e in await events_since(ctx, start)
            if e.project_id == w.project.id or e.user_id == w.assignee.id
        ]
        assert await stream(assignee_ws) == expected
        assert await stream(outsider_ws) == []


async def test_sql_on_projects_and_memberships_moves_audiences_like_the_api(
    factory: Factory,
) -> None:
    w = await World(factory).build()
    ctx = w.ctx
    async with live_server(ctx, change_capture_poll_seconds=0.2) as live:
        admin_ws = await live.connect(w.admin_user)
        outsider_ws = await live.connect(w.outsider)
        reporter_ws = await live.connect(w.reporter)
        async with psql(ctx) as sql:
            mark = await last_event_id(ctx)
            project_id = await sql.fetchval(
                "INSERT INTO projects (name, description, created_at, updated_at)"
                " VALUES ('psql project', 'made outside', now(), now()) RETURNING id"
            )
            created = await captured(ctx, mark)
            assert kinds(created) == [("project", "created")]
            assert created[0].payload == await rest_json(
                live, w.admin_user, f"/projects/{project_id}"
            )
            api = await projects.create_project(ctx, w.admin, ProjectCreate(name="api project"))
            # The API also makes its creator a member; the project event itself matches.
            assert shape(created[0]) == shape(api.events[-1])
            assert (await admin_ws.expect_event("project", "created"))["payload"]["id"] == (
                project_id
            )

            # The outsider joins: membership.added, then the project's events reach them.
            mark = await last_event_id(ctx)
            await sql.execute(
                "INSERT INTO memberships (project_id, user_id, created_at) VALUES ($1, $2, now())",
                project_id,
                w.outsider.id,
            )
            added = await captured(ctx, mark)
            api_add = await projects.add_member(
                ctx, w.admin, api.value.id, MembershipAdd(user_id=w.outsider.id)
            )
            assert shapes(added) == shapes(api_add.events)
            assert kinds(added) == [("membership", "added")]
            joined = await outsider_ws.expect_event("membership", "added")
            assert joined["payload"]["project_id"] == project_id

            mark = await last_event_id(ctx)
            await sql.execute(
                "UPDATE projects SET name = 'renamed outside', updated_at = now() WHERE id = $1",
                project_id,
            )
            renamed = await captured(ctx, mark)
            api_update = await projects.update_project(
                ctx, w.admin, api.value.id, ProjectUpdate(name="renamed api")
            )
            assert shapes(renamed) == shapes(api_update.events)
            got = await outsider_ws.expect_event("project", "updated")
            assert got["payload"]["name"] == "renamed outside"

            # The outsider leaves again: removed is delivered, later events are not.
            mark = await last_event_id(ctx)
            await sql.execute(
                "DELETE FROM memberships WHERE project_id = $1 AND user_id = $2",
                project_id,
                w.outsider.id,
            )
            removed = await captured(ctx, mark)
            api_remove = await projects.remove_member(ctx, w.admin, api.value.id, w.outsider.id)
            assert shapes(removed) == shapes(api_remove.events)
            assert kinds(removed) == [("membership", "removed")]
            await outsider_ws.expect_event("membership", "removed")
            await sql.execute("UPDATE projects SET description = 'after' WHERE id = $1", project_id)
            await captured(ctx, mark)
            later = await outsider_ws.events(quiet=0.4)
            assert [m for m in later if project_of(m) == project_id] == []

            # DELETE FROM projects cascades over bugs, comments and memberships: the API's
            # single project.deleted, nothing per bug, comment or member.
            bug = await w.twin_bug()
            await factory.comment(bug, w.reporter)
            await stream(reporter_ws)
            mark = await last_event_id(ctx)
            await sql.execute("DELETE FROM projects WHERE id = $1", w.project.id)
            gone = await captured(ctx, mark)
            assert kinds(gone) == [("project", "deleted")]
            assert gone[0].payload["id"] == w.project.id
            api_delete = await projects.delete_project(ctx, w.admin, api.value.id)
            assert shapes(gone) == shapes(api_delete.events)
            assert await stream(reporter_ws) == [("project", "deleted", gone[0].event_id)]


async def test_sql_on_users_gives_the_apis_events_and_suspension_closes_connections(
    factory: Factory,
) -> None:
    w = await World(factory).build()
    ctx = w.ctx
    bug = await w.twin_bug()  # assigned to w.assignee
    async with live_server(ctx, change_capture_poll_seconds=0.2) as live:
        admin_ws = await live.connect(w.admin_user)
        async with psql(ctx) as sql:
            mark = await last_event_id(ctx)
            user_id = await sql.fetchval(
                "INSERT INTO users (username, email, password_hash, role, status,"
                " created_at, updated_at) VALUES ('psqluser', 'psql@example.com', 'x',"
                " 'developer', 'active', now(), now()) RETURNING id"
            )
            created = await captured(ctx, mark)
            api = await users.create_user(
                ctx,
                w.admin,
                UserCreate(
                    username="apiuser",
                    email="api@example.com",
                    password="long enough password",
                    role=Role.DEVELOPER,
                ),
            )
            assert shapes(created) == shapes(api.events)
            assert kinds(created) == [("user", "created")]
            assert created[0].payload == await rest_json(live, w.admin_user, f"/users/{user_id}")
            assert "password_hash" not in created[0].payload
            user = User.model_validate(created[0].payload)

            user_ws = await live.connect(user)
            mark = await last_event_id(ctx)
            await sql.execute(
                "UPDATE users SET email = 'new@example.com', updated_at = now() WHERE id = $1",
                user_id,
            )
            await sql.execute("UPDATE users SET password_hash = 'y' WHERE id = $1", user_id)
            updated = await captured(ctx, mark)
            api_update = await users.update_user(
                ctx, w.admin, api.value.id, UserUpdate(email="newapi@example.com")
            )
            assert shapes(updated) == shapes(api_update.events)
            assert kinds(updated) == [("user", "updated")]  # a password change is silent
            got = await user_ws.expect_event("user", "updated")
            assert got["payload"]["email"] == "new@example.com"

            mark = await last_event_id(ctx)
            await sql.execute("UPDATE users SET status = 'suspended' WHERE id = $1", user_id)
            suspended = await captured(ctx, mark)
            api_status = await users.change_user_status(
                ctx, w.admin, api.value.id, UserStatusChange(status=UserStatus.SUSPENDED)
            )
            assert shapes(suspended) == shapes(api_status.events)
            assert kinds(suspended) == [("user", "status_changed")]
            assert suspended[0].payload["previous_status"] == "active"
            code, _ = await user_ws.closed()
            assert code == 4003

            # Deleting a user also unassigns their bugs, in the API's order: the unassignment
            # first, then user.deleted (PostgreSQL records the cascade after the delete).
            mark = await last_event_id(ctx)
            await sql.execute("DELETE FROM users WHERE id = $1", w.assignee.id)
            deleted = await captured(ctx, mark)
            assert kinds(deleted) == [("bug_report", "unassigned"), ("user", "deleted")]
            unassigned = next(e for e in deleted if e.type.value == "bug_report")
            assert unassigned.payload["id"] == bug.id
            assert unassigned.payload["previous_assignee_id"] == w.assignee.id
            assert unassigned.payload["assignee_id"] is None
            twin = await factory.bug(w.project, w.reporter, assignee=w.reporter)
            assert twin.assignee_id == w.reporter.id
            api_delete = await users.delete_user(ctx, w.admin, w.reporter.id)
            assert shapes(deleted) == shapes(api_delete.events)

        seen = {(t, e) for t, e, _ in await stream(admin_ws)}
        assert {("user", "created"), ("user", "status_changed"), ("user", "deleted")} <= seen


async def test_changes_made_through_the_api_are_not_captured_again(factory: Factory) -> None:
    w = await World(factory).build()
    ctx = w.ctx
    async with live_server(ctx, change_capture_poll_seconds=0.05) as live:
        member_ws = await live.connect(w.assignee)
        mark = await last_event_id(ctx)
        async with live.http(w.reporter) as http:
            response = await http.post(
                "/api/v1/bugs",
                json={"project_id": w.project.id, "title": "once", "assignee_id": w.assignee.id},
            )
            assert response.status_code == 201, response.text
            bug_id = response.json()["id"]
            response = await http.post(f"/api/v1/bugs/{bug_id}/comments", json={"content": "hi"})
            assert response.status_code == 201, response.text
            response = await http.post(f"/api/v1/bugs/{bug_id}/status", json={"status": "closed"})
            assert response.status_code == 200, response.text
        async with live.http(w.admin_user) as http:
            response = await http.post(
                f"/api/v1/projects/{w.project.id}/members", json={"user_id": w.outsider.id}
            )
            assert response.status_code == 201, response.text
        # The triggers skip bugstream's own transactions: nothing was even recorded.
        assert await pending_changes(ctx) == 0
        await asyncio.sleep(0.3)  # several capture passes
        events = await events_since(ctx, mark)
        assert kinds(events) == [
            ("bug_report", "created"),
            ("notification", "bug_assigned"),
            ("comment", "created"),
            ("notification", "comment_added"),
            ("bug_report", "status_changed"),
            ("notification", "status_changed"),
            ("membership", "added"),
        ]
        got = await stream(member_ws)
        assert [(t, e) for t, e, _ in got] == kinds(events)
        assert [i for _, _, i in got] == ids(events)


async def test_the_backlog_metric_shows_changes_waiting_when_no_instance_captures(
    factory: Factory,
) -> None:
    """Capture off (on every instance): an outside change waits, its age grows on /metrics,
    and it is processed, in order, once capture runs (the age is back to 0)."""
    w = await World(factory).build()
    metric = "bugstream_capture_oldest_pending_seconds"
    async with live_server(
        factory.ctx, change_capture_enabled=False, change_capture_poll_seconds=0.05
    ) as live:
        assert value(await scrape(live.http_url), metric) == 0.0
        async with psql(factory.ctx) as sql:
            await sql.execute("UPDATE projects SET name = 'renamed' WHERE id = $1", w.project.id)
        deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
        while (age := value(await scrape(live.http_url), metric)) < 0.5:
            assert asyncio.get_running_loop().time() < deadline, f"age stayed at {age}"
            await asyncio.sleep(0.05)
        assert await oldest_pending_age(factory.ctx) >= age  # still waiting, still growing

    mark = await last_event_id(factory.ctx)
    assert await process_captured_changes(factory.ctx) == 1
    assert kinds(await events_since(factory.ctx, mark)) == [("project", "updated")]
    assert await oldest_pending_age(factory.ctx) == 0.0


async def test_a_2000_row_cascade_gives_one_project_deleted_however_it_is_batched(
    factory: Factory,
) -> None:
    """A SQL delete of a project with 2,000 bugs records 2,000 cascaded deletes after the
    project's. Read 500 at a time without regard to transactions, the batches after the first
    no longer saw the project's delete and emitted 1,500 spurious `bug_report.deleted`
    (issue 11.5). A batch now takes every change of the transactions it holds."""
    w = await World(factory).build()
    async with psql(w.ctx) as conn:
        await conn.execute(
            "INSERT INTO bug_reports (project_id, title, description, status, priority,"
            " reporter_id, created_at, updated_at)"
            " SELECT $1, 'bulk ' || n, '', 'open', 'low', $2, now(), now()"
            " FROM generate_series(1, 2000) AS n",
            w.project.id,
            w.reporter.id,
        )
    await process_captured_changes(w.ctx, batch=500)
    mark = await last_event_id(w.ctx)
    async with psql(w.ctx) as conn:
        await conn.execute("DELETE FROM projects WHERE id = $1", w.project.id)
    assert await pending_changes(w.ctx) > 2000
    await process_captured_changes(w.ctx, batch=500)
    assert await pending_changes(w.ctx) == 0
    events = await events_since(w.ctx, mark)
    assert [(e.type.value, e.event.value) for e in events] == [("project", "deleted")]


async def remove_assignee_by_sql(conn: Any, w: World) -> None:
    await conn.execute(
        "DELETE FROM memberships WHERE project_id = $1 AND user_id = $2",
        w.project.id,
        w.assignee.id,
    )


async def test_removing_a_member_by_sql_unassigns_their_bugs_as_the_api_does(
    factory: Factory,
) -> None:
    """One rule for both paths (issue 12.2): a removed member's bugs in the project are
    unassigned, each with `bug_report.unassigned`, then `membership.removed`. Before, SQL gave
    only `membership.removed` and left the bugs assigned to someone who cannot see them."""
    w = await World(factory).build()
    await w.twin_bug()
    await w.twin_bug()
    mark = await last_event_id(w.ctx)
    await projects.remove_member(w.ctx, w.admin, w.project.id, w.assignee.id)
    by_api = await events_since(w.ctx, mark)

    member = MembershipAdd(user_id=w.assignee.id)
    await projects.add_member(w.ctx, w.admin, w.project.id, member)
    by_sql_bugs = [await w.twin_bug(), await w.twin_bug()]
    mark = await last_event_id(w.ctx)
    async with psql(w.ctx) as conn:
        await remove_assignee_by_sql(conn, w)
    await process_captured_changes(w.ctx)
    by_sql = await captured(w.ctx, mark)

    expected = [("bug_report", "unassigned")] * 2 + [("membership", "removed")]
    assert kinds(by_api) == expected
    assert kinds(by_sql) == expected
    assert shapes(by_sql) == shapes(by_api)
    assert {e.payload["id"] for e in by_sql[:2]} == {b.id for b in by_sql_bugs}
    assert all(e.payload["previous_assignee_id"] == w.assignee.id for e in by_sql[:2])
    for bug in by_sql_bugs:  # the rows too, not just the events
        assert (await bugs.get_bug(w.ctx, w.admin, bug.id)).assignee_id is None


async def test_a_member_removed_then_re_added_by_sql_keeps_later_assignments(
    factory: Factory,
) -> None:
    """Capture runs after the fact: a member removed and added back (in SQL) before it runs
    keeps the bugs assigned to them since; only `membership.removed` / `added` are written."""
    w = await World(factory).build()
    bug = await w.twin_bug()
    mark = await last_event_id(w.ctx)
    async with psql(w.ctx) as conn:
        await remove_assignee_by_sql(conn, w)
        await conn.execute(
            "INSERT INTO memberships (project_id, user_id, created_at) VALUES ($1, $2, now())",
            w.project.id,
            w.assignee.id,
        )
    await process_captured_changes(w.ctx)
    events = await captured(w.ctx, mark)
    assert kinds(events) == [("membership", "removed"), ("membership", "added")]
    assert (await bugs.get_bug(w.ctx, w.admin, bug.id)).assignee_id == w.assignee.id
