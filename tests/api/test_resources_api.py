"""Every REST endpoint family on its happy path, plus not_found, forbidden and conflict.

Timestamps come from the test clock (2026-01-05 09:00 UTC) and are ISO 8601 with `Z`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bugstream.domain.enums import BugStatus, Priority, Role
from bugstream.domain.models import User
from tests.api.conftest import Api, error_payload
from tests.support.clock import FakeClock
from tests.support.factory import Factory

V1 = "/api/v1"
UTC_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
USER_FIELDS = {"id", "username", "email", "role", "status", "created_at", "updated_at"}
PROJECT_FIELDS = {"id", "name", "description", "created_at", "updated_at"}
BUG_FIELDS = {
    "id",
    "title",
    "description",
    "status",
    "priority",
    "assignee_id",
    "reporter_id",
    "project_id",
    "created_at",
    "updated_at",
}
COMMENT_FIELDS = {"id", "bug_report_id", "user_id", "content", "created_at", "updated_at"}
NOTIFICATION_FIELDS = {"id", "type", "user_id", "bug_report_id", "message", "read", "created_at"}


def utc(value: Any) -> datetime:
    """A timestamp field: ISO 8601 in UTC with `Z`, from the test clock's day."""
    assert isinstance(value, str) and UTC_ISO.match(value), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None and parsed.utcoffset() == UTC.utcoffset(None)
    assert parsed.date() >= datetime(2026, 1, 5, tzinfo=UTC).date()
    return parsed


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def page(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = ok(response)
    assert set(body) == {"items", "total", "limit", "offset"}, body
    return body


def ids(items: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for item in items]


# --- users -----------------------------------------------------------------------------------


async def test_admin_manages_users(api: Api, factory: Factory) -> None:
    admin = await api.login(await factory.user(Role.ADMIN))
    new = {"username": "carol", "email": "carol@example.com", "password": "long enough pw"}

    created = ok(await api.client.post(f"{V1}/users", json=new, headers=admin), 201)
    assert set(created) == USER_FIELDS
    assert created["username"] == "carol"
    assert created["email"] == "carol@example.com"
    assert (created["role"], created["status"]) == ("reporter", "active")
    assert utc(created["created_at"]) == utc(created["updated_at"])
    uid = created["id"]
    # The new account works.
    assert (await api.login("carol", "long enough pw"))["Authorization"].startswith("Bearer ")

    assert ok(await api.client.get(f"{V1}/users/{uid}", headers=admin)) == created

    patch = {"email": "carol@corp.example", "role": "developer"}
    updated = ok(await api.client.patch(f"{V1}/users/{uid}", json=patch, headers=admin))
    assert (updated["email"], updated["role"]) == ("carol@corp.example", "developer")
    assert utc(updated["updated_at"]) > utc(created["updated_at"])

    suspended = ok(
        await api.client.post(
            f"{V1}/users/{uid}/status", json={"status": "suspended"}, headers=admin
        )
    )
    assert suspended["status"] == "suspended"

    deleted = await api.client.delete(f"{V1}/users/{uid}", headers=admin)
    assert deleted.status_code == 204
    assert deleted.content == b""
    error_payload(await api.client.get(f"{V1}/users/{uid}", headers=admin), 404, "not_found")


async def test_list_users_pages_and_filters(api: Api, factory: Factory) -> None:
    admin_user = await factory.user(Role.ADMIN)
    devs = [await factory.user(Role.DEVELOPER) for _ in range(3)]
    viewer = await factory.user(Role.VIEWER)
    admin = await api.login(admin_user)

    everyone = page(await api.client.get(f"{V1}/users", headers=admin))
    assert everyone["total"] == 5
    assert (everyone["limit"], everyone["offset"]) == (50, 0)
    assert ids(everyone["items"]) == [admin_user.id, *(d.id for d in devs), viewer.id]
    for item in everyone["items"]:
        assert set(item) == USER_FIELDS

    window = page(await api.client.get(f"{V1}/users?limit=2&offset=1", headers=admin))
    assert (window["total"], window["limit"], window["offset"]) == (5, 2, 1)
    assert ids(window["items"]) == [devs[0].id, devs[1].id]

    beyond = page(await api.client.get(f"{V1}/users?offset=10", headers=admin))
    assert (beyond["items"], beyond["total"]) == ([], 5)

    developers = page(await api.client.get(f"{V1}/users?role=developer", headers=admin))
    assert ids(developers["items"]) == [d.id for d in devs]
    assert developers["total"] == 3


async def test_a_user_reads_and_edits_only_themselves(api: Api, factory: Factory) -> None:
    me = await factory.user(Role.DEVELOPER)
    other = await factory.user(Role.DEVELOPER)
    headers = await api.login(me)

    mine = ok(await api.client.get(f"{V1}/users/{me.id}", headers=headers))
    assert mine["username"] == me.username
    updated = ok(
        await api.client.patch(
            f"{V1}/users/{me.id}", json={"email": "new@example.com"}, headers=headers
        )
    )
    assert updated["email"] == "new@example.com"
    # Other accounts are invisible, and admin-only actions are forbidden.
    error_payload(await api.client.get(f"{V1}/users/{other.id}", headers=headers), 404, "not_found")
    error_payload(await api.client.get(f"{V1}/users", headers=headers), 403, "forbidden")
    error_payload(
        await api.client.patch(f"{V1}/users/{me.id}", json={"role": "admin"}, headers=headers),
        403,
        "forbidden",
    )
    new = {"username": "mallory", "email": "m@example.com", "password": "long enough pw"}
    error_payload(await api.client.post(f"{V1}/users", json=new, headers=headers), 403, "forbidden")
    error_payload(
        await api.client.delete(f"{V1}/users/{other.id}", headers=headers), 403, "forbidden"
    )
    error_payload(
        await api.client.post(
            f"{V1}/users/{other.id}/status", json={"status": "suspended"}, headers=headers
        ),
        403,
        "forbidden",
    )


@pytest.mark.parametrize(
    ("clash", "field"),
    [
        ({"username": "taken", "email": "fresh@example.com"}, "username"),
        ({"username": "fresh", "email": "taken@example.com"}, "email"),
    ],
)
async def test_duplicate_username_or_email_is_a_conflict(
    api: Api, factory: Factory, clash: dict[str, str], field: str
) -> None:
    await factory.user(name="taken")
    admin = await api.login(await factory.user(Role.ADMIN))

    response = await api.client.post(
        f"{V1}/users", json={**clash, "password": "long enough pw"}, headers=admin
    )

    payload = error_payload(response, 409, "conflict")
    assert [f["field"] for f in payload["fields"]] == [field]
    assert payload["fields"][0]["rule"] == "unique"


async def test_renaming_a_user_to_a_taken_name_is_a_conflict(api: Api, factory: Factory) -> None:
    await factory.user(name="taken")
    me = await factory.user()
    headers = await api.login(me)

    response = await api.client.patch(
        f"{V1}/users/{me.id}", json={"username": "taken"}, headers=headers
    )

    error_payload(response, 409, "conflict")


# --- projects and members ----------------------------------------------------------------


async def test_manager_runs_a_project_and_its_members(api: Api, factory: Factory) -> None:
    manager = await factory.user(Role.MANAGER)
    dev = await factory.user(Role.DEVELOPER)
    headers = await api.login(manager)

    body = {"name": "Apollo", "description": "to the moon"}
    project = ok(await api.client.post(f"{V1}/projects", json=body, headers=headers), 201)
    assert set(project) == PROJECT_FIELDS
    assert (project["name"], project["description"]) == ("Apollo", "to the moon")
    utc(project["created_at"])
    pid = project["id"]

    assert ok(await api.client.get(f"{V1}/projects/{pid}", headers=headers)) == project
    listed = page(await api.client.get(f"{V1}/projects", headers=headers))
    assert (ids(listed["items"]), listed["total"]) == ([pid], 1)

    renamed = ok(
        await api.client.patch(f"{V1}/projects/{pid}", json={"name": "Artemis"}, headers=headers)
    )
    assert (renamed["name"], renamed["description"]) == ("Artemis", "to the moon")

    # The creator is the first member; add and remove another.
    members = ok(await api.client.get(f"{V1}/projects/{pid}/members", headers=headers))
    assert [m["id"] for m in members] == [manager.id]
    membership = ok(
        await api.client.post(
            f"{V1}/projects/{pid}/members", json={"user_id": dev.id}, headers=headers
        ),
        201,
    )
    assert set(membership) == {"project_id", "user_id", "created_at"}
    assert (membership["project_id"], membership["user_id"]) == (pid, dev.id)
    utc(membership["created_at"])
    members = ok(await api.client.get(f"{V1}/projects/{pid}/members", headers=headers))
    assert sorted(m["id"] for m in members) == sorted([manager.id, dev.id])
    assert set(members[0]) == USER_FIELDS
    again = await api.client.post(
        f"{V1}/projects/{pid}/members", json={"user_id": dev.id}, headers=headers
    )
    error_payload(again, 409, "conflict")

    removed = await api.client.delete(f"{V1}/projects/{pid}/members/{dev.id}", headers=headers)
    assert removed.status_code == 204
    error_payload(
        await api.client.delete(f"{V1}/projects/{pid}/members/{dev.id}", headers=headers),
        404,
        "not_found",
    )

    # Deleting projects is for admins.
    error_payload(
        await api.client.delete(f"{V1}/projects/{pid}", headers=headers), 403, "forbidden"
    )
    admin = await api.login(await factory.user(Role.ADMIN))
    deleted = await api.client.delete(f"{V1}/projects/{pid}", headers=admin)
    assert (deleted.status_code, deleted.content) == (204, b"")
    error_payload(await api.client.get(f"{V1}/projects/{pid}", headers=headers), 404, "not_found")


async def test_projects_are_listed_for_members_and_paged(api: Api, factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    mine = [await factory.project(dev) for _ in range(3)]
    await factory.project()  # not a member
    headers = await api.login(dev)

    listed = page(await api.client.get(f"{V1}/projects", headers=headers))
    assert (ids(listed["items"]), listed["total"]) == ([p.id for p in mine], 3)
    window = page(await api.client.get(f"{V1}/projects?limit=1&offset=2", headers=headers))
    assert (ids(window["items"]), window["total"], window["limit"]) == ([mine[2].id], 3, 1)

    admin = await api.login(await factory.user(Role.ADMIN))
    assert page(await api.client.get(f"{V1}/projects", headers=admin))["total"] == 4


async def test_project_access_for_non_members_and_lesser_roles(api: Api, factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    outsider = await factory.user(Role.MANAGER)
    project = await factory.project(dev)
    dev_headers = await api.login(dev)
    out_headers = await api.login(outsider)
    path = f"{V1}/projects/{project.id}"

    # A member without the right: forbidden. A non-member: the project does not exist.
    error_payload(
        await api.client.patch(path, json={"name": "x"}, headers=dev_headers), 403, "forbidden"
    )
    error_payload(
        await api.client.post(f"{path}/members", json={"user_id": dev.id}, headers=dev_headers),
        403,
        "forbidden",
    )
    error_payload(
        await api.client.post(f"{V1}/projects", json={"name": "mine"}, headers=dev_headers),
        403,
        "forbidden",
    )
    error_payload(await api.client.get(path, headers=out_headers), 404, "not_found")
    error_payload(await api.client.get(f"{path}/members", headers=out_headers), 404, "not_found")
    error_payload(
        await api.client.patch(path, json={"name": "x"}, headers=out_headers), 404, "not_found"
    )


async def test_duplicate_project_name_is_a_conflict(api: Api, factory: Factory) -> None:
    await factory.project(name="Apollo")
    other = await factory.project(name="Gemini")
    admin = await api.login(await factory.user(Role.ADMIN))

    created = await api.client.post(f"{V1}/projects", json={"name": "Apollo"}, headers=admin)
    renamed = await api.client.patch(
        f"{V1}/projects/{other.id}", json={"name": "Apollo"}, headers=admin
    )

    for response in (created, renamed):
        payload = error_payload(response, 409, "conflict")
        assert payload["fields"][0]["field"] == "name"
        assert payload["fields"][0]["rule"] == "unique"


# --- bug reports -------------------------------------------------------------------------


async def test_bug_lifecycle(api: Api, factory: Factory) -> None:
    manager = await factory.user(Role.MANAGER)
    dev = await factory.user(Role.DEVELOPER)
    reporter = await factory.user(Role.REPORTER)
    project = await factory.project(manager, dev, reporter)
    rep_headers = await api.login(reporter)
    dev_headers = await api.login(dev)
    mgr_headers = await api.login(manager)

    new = {"project_id": project.id, "title": "Crash on save", "description": "1. save\n2. boom"}
    bug = ok(await api.client.post(f"{V1}/bugs", json=new, headers=rep_headers), 201)
    assert set(bug) == BUG_FIELDS
    assert bug["title"] == "Crash on save"
    assert bug["description"] == "1. save\n2. boom"
    assert (bug["status"], bug["priority"]) == ("open", "medium")
    assert (bug["reporter_id"], bug["assignee_id"], bug["project_id"]) == (
        reporter.id,
        None,
        project.id,
    )
    assert utc(bug["created_at"]) == utc(bug["updated_at"])
    path = f"{V1}/bugs/{bug['id']}"

    assert ok(await api.client.get(path, headers=dev_headers)) == bug

    edited = ok(
        await api.client.patch(
            path, json={"priority": "high", "title": "Crash"}, headers=rep_headers
        )
    )
    assert (edited["priority"], edited["title"], edited["description"]) == (
        "high",
        "Crash",
        bug["description"],
    )
    assert utc(edited["updated_at"]) > utc(bug["updated_at"])

    moved = ok(
        await api.client.post(f"{path}/status", json={"status": "in_progress"}, headers=dev_headers)
    )
    assert moved["status"] == "in_progress"

    assigned = ok(
        await api.client.post(f"{path}/assign", json={"assignee_id": dev.id}, headers=dev_headers)
    )
    assert assigned["assignee_id"] == dev.id

    reminder = ok(await api.client.post(f"{path}/remind", headers=mgr_headers), 201)
    assert set(reminder) == NOTIFICATION_FIELDS
    assert (reminder["type"], reminder["user_id"], reminder["bug_report_id"]) == (
        "reminder_sent",
        dev.id,
        bug["id"],
    )
    assert reminder["read"] is False
    utc(reminder["created_at"])

    unassigned = ok(await api.client.post(f"{path}/unassign", headers=dev_headers))
    assert unassigned["assignee_id"] is None
    # Nobody to remind any more.
    error_payload(await api.client.post(f"{path}/remind", headers=mgr_headers), 409, "conflict")

    # Reporters and developers may not delete bugs; managers may.
    error_payload(await api.client.delete(path, headers=rep_headers), 403, "forbidden")
    error_payload(await api.client.delete(path, headers=dev_headers), 403, "forbidden")
    deleted = await api.client.delete(path, headers=mgr_headers)
    assert (deleted.status_code, deleted.content) == (204, b"")
    error_payload(await api.client.get(path, headers=mgr_headers), 404, "not_found")


async def test_bug_created_with_assignee_and_priority(api: Api, factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    other = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev, other)
    headers = await api.login(dev)

    bug = ok(
        await api.client.post(
            f"{V1}/bugs",
            json={
                "project_id": project.id,
                "title": "t",
                "priority": "critical",
                "assignee_id": other.id,
            },
            headers=headers,
        ),
        201,
    )

    assert (bug["priority"], bug["assignee_id"], bug["description"]) == ("critical", other.id, "")


async def test_bug_permissions(api: Api, factory: Factory) -> None:
    reporter = await factory.user(Role.REPORTER)
    other_reporter = await factory.user(Role.REPORTER)
    viewer = await factory.user(Role.VIEWER)
    outsider = await factory.user(Role.DEVELOPER)
    project = await factory.project(reporter, other_reporter, viewer)
    bug = await factory.bug(project, reporter)
    path = f"{V1}/bugs/{bug.id}"
    other_headers = await api.login(other_reporter)
    viewer_headers = await api.login(viewer)
    outsider_headers = await api.login(outsider)

    # Reporters edit only their own bugs and cannot change status or assign.
    error_payload(
        await api.client.patch(path, json={"title": "mine"}, headers=other_headers),
        403,
        "forbidden",
    )
    error_payload(
        await api.client.post(f"{path}/status", json={"status": "closed"}, headers=other_headers),
        403,
        "forbidden",
    )
    error_payload(
        await api.client.post(
            f"{path}/assign", json={"assignee_id": reporter.id}, headers=other_headers
        ),
        403,
        "forbidden",
    )
    error_payload(await api.client.post(f"{path}/remind", headers=other_headers), 403, "forbidden")
    # Viewers read, and nothing more.
    assert ok(await api.client.get(path, headers=viewer_headers))["id"] == bug.id
    error_payload(
        await api.client.post(
            f"{V1}/bugs", json={"project_id": project.id, "title": "t"}, headers=viewer_headers
        ),
        403,
        "forbidden",
    )
    # Non-members see nothing of the project.
    error_payload(await api.client.get(path, headers=outsider_headers), 404, "not_found")
    error_payload(
        await api.client.get(f"{V1}/bugs?project_id={project.id}", headers=outsider_headers),
        404,
        "not_found",
    )
    error_payload(
        await api.client.post(
            f"{V1}/bugs", json={"project_id": project.id, "title": "t"}, headers=outsider_headers
        ),
        404,
        "not_found",
    )
    everything = page(await api.client.get(f"{V1}/bugs", headers=outsider_headers))
    assert (everything["items"], everything["total"]) == ([], 0)


async def test_bug_list_filters_and_pages(api: Api, factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    other = await factory.user(Role.DEVELOPER)
    outsider = await factory.user(Role.DEVELOPER)
    alpha = await factory.project(dev, other)
    beta = await factory.project(dev)
    hidden = await factory.project(outsider)
    headers = await api.login(dev)

    async def bug(project_id: int, priority: Priority, assignee: User | None = None) -> int:
        body: dict[str, Any] = {"project_id": project_id, "title": "b", "priority": priority.value}
        if assignee is not None:
            body["assignee_id"] = assignee.id
        return int(ok(await api.client.post(f"{V1}/bugs", json=body, headers=headers), 201)["id"])

    a1 = await bug(alpha.id, Priority.LOW, dev)
    a2 = await bug(alpha.id, Priority.HIGH, other)
    a3 = await bug(alpha.id, Priority.HIGH)
    b1 = await bug(beta.id, Priority.HIGH, dev)
    b2 = await bug(beta.id, Priority.CRITICAL)
    await factory.bug(hidden, outsider)
    ok(
        await api.client.post(
            f"{V1}/bugs/{a3}/status", json={"status": "resolved"}, headers=headers
        )
    )
    ok(
        await api.client.post(
            f"{V1}/bugs/{b2}/status", json={"status": "resolved"}, headers=headers
        )
    )

    async def listed(query: str) -> tuple[list[int], int]:
        body = page(await api.client.get(f"{V1}/bugs{query}", headers=headers))
        for item in body["items"]:
            assert set(item) == BUG_FIELDS
        return ids(body["items"]), body["total"]

    assert await listed("") == ([a1, a2, a3, b1, b2], 5)
    assert await listed(f"?project_id={alpha.id}") == ([a1, a2, a3], 3)
    assert await listed(f"?project_id={beta.id}") == ([b1, b2], 2)
    assert await listed(f"?status={BugStatus.RESOLVED.value}") == ([a3, b2], 2)
    assert await listed("?status=open") == ([a1, a2, b1], 3)
    assert await listed("?priority=high") == ([a2, a3, b1], 3)
    assert await listed(f"?assignee_id={dev.id}") == ([a1, b1], 2)
    assert await listed(f"?assignee_id={other.id}") == ([a2], 1)
    assert await listed(f"?project_id={alpha.id}&priority=high&status=open") == ([a2], 1)
    assert await listed("?limit=2") == ([a1, a2], 5)
    assert await listed("?limit=2&offset=2") == ([a3, b1], 5)
    assert await listed("?limit=2&offset=4") == ([b2], 5)
    assert await listed("?priority=high&limit=1&offset=1") == ([a3], 3)
    window = page(await api.client.get(f"{V1}/bugs?limit=2&offset=2", headers=headers))
    assert (window["limit"], window["offset"]) == (2, 2)

    # An admin sees the hidden project's bug too.
    admin = await api.login(await factory.user(Role.ADMIN))
    assert page(await api.client.get(f"{V1}/bugs", headers=admin))["total"] == 6


@pytest.mark.parametrize(
    "query",
    ["?limit=0", "?limit=201", "?offset=-1", "?status=done", "?priority=urgent", "?project_id=x"],
)
async def test_bad_list_parameters_are_refused(api: Api, factory: Factory, query: str) -> None:
    headers = await api.login(await factory.user(Role.ADMIN))

    payload = error_payload(
        await api.client.get(f"{V1}/bugs{query}", headers=headers), 422, "validation_failed"
    )

    field = query[1:].split("=")[0]
    assert [f["field"] for f in payload["fields"]] == [field]


# --- comments ----------------------------------------------------------------------------


async def test_comment_lifecycle(api: Api, factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    reporter = await factory.user(Role.REPORTER)
    project = await factory.project(dev, reporter)
    bug = await factory.bug(project, reporter)
    headers = await api.login(reporter)
    dev_headers = await api.login(dev)
    bug_comments = f"{V1}/bugs/{bug.id}/comments"

    comment = ok(
        await api.client.post(bug_comments, json={"content": "It\nhappens daily"}, headers=headers),
        201,
    )
    assert set(comment) == COMMENT_FIELDS
    assert (comment["bug_report_id"], comment["user_id"], comment["content"]) == (
        bug.id,
        reporter.id,
        "It\nhappens daily",
    )
    assert utc(comment["created_at"]) == utc(comment["updated_at"])
    path = f"{V1}/comments/{comment['id']}"

    assert ok(await api.client.get(path, headers=dev_headers)) == comment

    edited = ok(
        await api.client.patch(path, json={"content": "It happens hourly"}, headers=headers)
    )
    assert edited["content"] == "It happens hourly"
    assert utc(edited["updated_at"]) > utc(comment["updated_at"])

    # Developers edit and delete only their own comments.
    error_payload(
        await api.client.patch(path, json={"content": "no"}, headers=dev_headers), 403, "forbidden"
    )
    error_payload(await api.client.delete(path, headers=dev_headers), 403, "forbidden")

    deleted = await api.client.delete(path, headers=headers)
    assert (deleted.status_code, deleted.content) == (204, b"")
    error_payload(await api.client.get(path, headers=headers), 404, "not_found")


async def test_comments_are_listed_per_bug_and_paged(api: Api, factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    outsider = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    bug = await factory.bug(project, dev)
    other_bug = await factory.bug(project, dev)
    made = [await factory.comment(bug, dev, f"c{i}") for i in range(3)]
    await factory.comment(other_bug, dev)
    headers = await api.login(dev)
    path = f"{V1}/bugs/{bug.id}/comments"

    listed = page(await api.client.get(path, headers=headers))
    assert (ids(listed["items"]), listed["total"]) == ([c.id for c in made], 3)
    assert [c["content"] for c in listed["items"]] == ["c0", "c1", "c2"]
    window = page(await api.client.get(f"{path}?limit=1&offset=1", headers=headers))
    assert (ids(window["items"]), window["total"]) == ([made[1].id], 3)

    outsider_headers = await api.login(outsider)
    error_payload(await api.client.get(path, headers=outsider_headers), 404, "not_found")
    error_payload(
        await api.client.get(f"{V1}/comments/{made[0].id}", headers=outsider_headers),
        404,
        "not_found",
    )
    error_payload(
        await api.client.post(path, json={"content": "hi"}, headers=outsider_headers),
        404,
        "not_found",
    )


# --- notifications -----------------------------------------------------------------------


async def test_notifications_list_get_and_mark_read(api: Api, factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    reporter = await factory.user(Role.REPORTER)
    project = await factory.project(dev, reporter)
    bug = await factory.bug(project, reporter, assignee=dev)  # dev: bug_assigned
    await factory.comment(bug, reporter)  # dev: comment_added
    rep_headers = await api.login(reporter)
    headers = await api.login(dev)
    ok(
        await api.client.post(
            f"{V1}/bugs/{bug.id}/status", json={"status": "resolved"}, headers=headers
        )
    )
    # reporter: status_changed (the actor, dev, is not notified)

    mine = page(await api.client.get(f"{V1}/notifications", headers=headers))
    assert [n["type"] for n in mine["items"]] == ["bug_assigned", "comment_added"]
    assert mine["total"] == 2
    for item in mine["items"]:
        assert set(item) == NOTIFICATION_FIELDS
        assert (item["user_id"], item["bug_report_id"], item["read"]) == (dev.id, bug.id, False)
        assert f"#{bug.id}" in item["message"]
        utc(item["created_at"])
    first, second = mine["items"]
    window = page(await api.client.get(f"{V1}/notifications?limit=1&offset=1", headers=headers))
    assert (ids(window["items"]), window["total"]) == ([second["id"]], 2)

    theirs = page(await api.client.get(f"{V1}/notifications", headers=rep_headers))
    assert [n["type"] for n in theirs["items"]] == ["status_changed"]
    assert "resolved" in theirs["items"][0]["message"]

    assert ok(await api.client.get(f"{V1}/notifications/{first['id']}", headers=headers)) == first
    # Someone else's notification does not exist for you.
    error_payload(
        await api.client.get(f"{V1}/notifications/{first['id']}", headers=rep_headers),
        404,
        "not_found",
    )
    error_payload(
        await api.client.post(f"{V1}/notifications/{first['id']}/read", headers=rep_headers),
        404,
        "not_found",
    )

    read = ok(await api.client.post(f"{V1}/notifications/{first['id']}/read", headers=headers))
    assert read == {**first, "read": True}
    # Marking again changes nothing.
    assert (
        ok(await api.client.post(f"{V1}/notifications/{first['id']}/read", headers=headers)) == read
    )
    unread = page(await api.client.get(f"{V1}/notifications?unread=true", headers=headers))
    assert (ids(unread["items"]), unread["total"]) == ([second["id"]], 1)

    marked = ok(await api.client.post(f"{V1}/notifications/read-all", headers=headers))
    assert marked == {"ids": [second["id"]]}
    assert ok(await api.client.post(f"{V1}/notifications/read-all", headers=headers)) == {"ids": []}
    after = page(await api.client.get(f"{V1}/notifications", headers=headers))
    assert all(n["read"] for n in after["items"])
    # The reporter's notification is untouched.
    theirs = page(await api.client.get(f"{V1}/notifications?unread=true", headers=rep_headers))
    assert theirs["total"] == 1


# --- admin -------------------------------------------------------------------------------


async def test_admin_runs_due_reminders(api: Api, factory: Factory, clock: FakeClock) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    stale = await factory.bug(project, dev, assignee=dev)
    admin = await api.login(await factory.user(Role.ADMIN))
    path = f"{V1}/admin/reminders/run"

    assert ok(await api.client.post(path, headers=admin)) == {"sent": []}

    clock.advance(days=4)
    fresh = await factory.bug(project, dev, assignee=dev)  # untouched for less than 3 days
    sent = ok(await api.client.post(path, headers=admin))["sent"]
    assert [(n["type"], n["user_id"], n["bug_report_id"]) for n in sent] == [
        ("reminder_sent", dev.id, stale.id)
    ]
    assert set(sent[0]) == NOTIFICATION_FIELDS
    assert fresh.id != stale.id
    # At most once per period.
    assert ok(await api.client.post(path, headers=admin)) == {"sent": []}

    error_payload(await api.client.post(path, headers=await api.login(dev)), 403, "forbidden")


# --- missing ids, unknown routes, docs ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users/999", None),
        ("PATCH", "/users/999", {"email": "x@example.com"}),
        ("POST", "/users/999/status", {"status": "active"}),
        ("DELETE", "/users/999", None),
        ("GET", "/projects/999", None),
        ("PATCH", "/projects/999", {"name": "x"}),
        ("DELETE", "/projects/999", None),
        ("GET", "/projects/999/members", None),
        ("POST", "/projects/999/members", {"user_id": 1}),
        ("DELETE", "/projects/999/members/1", None),
        ("GET", "/bugs/999", None),
        ("PATCH", "/bugs/999", {"title": "x"}),
        ("DELETE", "/bugs/999", None),
        ("POST", "/bugs/999/status", {"status": "closed"}),
        ("POST", "/bugs/999/assign", {"assignee_id": 1}),
        ("POST", "/bugs/999/unassign", None),
        ("POST", "/bugs/999/remind", None),
        ("GET", "/bugs/999/comments", None),
        ("POST", "/bugs/999/comments", {"content": "x"}),
        ("POST", "/bugs", {"project_id": 999, "title": "x"}),
        ("GET", "/comments/999", None),
        ("PATCH", "/comments/999", {"content": "x"}),
        ("DELETE", "/comments/999", None),
        ("GET", "/notifications/999", None),
        ("POST", "/notifications/999/read", None),
        ("GET", "/no-such-thing", None),
    ],
)
async def test_missing_ids_are_not_found(
    api: Api, factory: Factory, method: str, path: str, body: dict[str, Any] | None
) -> None:
    headers = await api.login(await factory.user(Role.ADMIN))

    response = await api.client.request(method, f"{V1}{path}", json=body, headers=headers)

    error_payload(response, 404, "not_found")


async def test_an_unsupported_method_gets_the_error_shape(api: Api, factory: Factory) -> None:
    headers = await api.login(await factory.user(Role.ADMIN))

    response = await api.client.put(f"{V1}/users/me", json={}, headers=headers)

    assert response.status_code == 405
    assert response.json()["type"] == "error"


async def test_openapi_lists_the_api_and_docs_are_served(api: Api) -> None:
    schema = ok(await api.client.get("/openapi.json"))
    paths = set(schema["paths"])
    expected = {
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/users",
        "/api/v1/users/me",
        "/api/v1/users/{user_id}",
        "/api/v1/users/{user_id}/status",
        "/api/v1/projects",
        "/api/v1/projects/{project_id}",
        "/api/v1/projects/{project_id}/members",
        "/api/v1/projects/{project_id}/members/{user_id}",
        "/api/v1/bugs",
        "/api/v1/bugs/{bug_id}",
        "/api/v1/bugs/{bug_id}/status",
        "/api/v1/bugs/{bug_id}/assign",
        "/api/v1/bugs/{bug_id}/unassign",
        "/api/v1/bugs/{bug_id}/remind",
        "/api/v1/bugs/{bug_id}/comments",
        "/api/v1/comments/{comment_id}",
        "/api/v1/notifications",
        "/api/v1/notifications/{notification_id}",
        "/api/v1/notifications/{notification_id}/read",
        "/api/v1/notifications/read-all",
        "/api/v1/admin/reminders/run",
    }
    assert expected <= paths
    assert all(p.startswith("/api/v1/") for p in paths)
    assert set(schema["paths"]["/api/v1/bugs"]) == {"get", "post"}

    docs = await api.client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    assert "/openapi.json" in docs.text
