"""Invalid input on every endpoint that takes a body: the documented error, and no change.

Each refused request is checked against a snapshot of the database (row counts of every table
and the last outbox id) taken just before it: a refused request writes nothing, not even an
event. Requests are sent by an admin, so permissions never decide the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from bugstream.domain.enums import Role, UserStatus
from bugstream.domain.models import UserStatusChange
from bugstream.services import users
from tests.api.conftest import Api, error_payload, running_api, snapshot
from tests.support.factory import PASSWORD, Factory

V1 = "/api/v1"


class Ref(str):
    """An id of the test world, filled in when the request is sent."""


#: endpoint family -> (method, path); paths name world ids in braces.
ENDPOINTS: dict[str, tuple[str, str]] = {
    "auth.token": ("POST", "/auth/token"),
    "users.create": ("POST", "/users"),
    "users.update": ("PATCH", "/users/{dev}"),
    "users.status": ("POST", "/users/{dev}/status"),
    "projects.create": ("POST", "/projects"),
    "projects.update": ("PATCH", "/projects/{project}"),
    "members.add": ("POST", "/projects/{project}/members"),
    "bugs.create": ("POST", "/bugs"),
    "bugs.update": ("PATCH", "/bugs/{bug}"),
    "bugs.status": ("POST", "/bugs/{bug}/status"),
    "bugs.assign": ("POST", "/bugs/{bug}/assign"),
    "comments.create": ("POST", "/bugs/{bug}/comments"),
    "comments.update": ("PATCH", "/comments/{comment}"),
}

#: A body each endpoint accepts; invalid cases change one thing in it.
VALID: dict[str, dict[str, Any]] = {
    "auth.token": {"username": "root", "password": PASSWORD},
    "users.create": {
        "username": "newbie",
        "email": "newbie@example.com",
        "password": "pw-long-enough",
    },
    "users.update": {"username": "renamed", "email": "renamed@example.com"},
    "users.status": {"status": "suspended"},
    "projects.create": {"name": "New project", "description": "about it"},
    "projects.update": {"name": "Renamed", "description": "new words"},
    "members.add": {"user_id": Ref("outsider")},
    "bugs.create": {"project_id": Ref("project"), "title": "New bug", "priority": "high"},
    "bugs.update": {"title": "Edited", "description": "more", "priority": "low"},
    "bugs.status": {"status": "closed"},
    "bugs.assign": {"assignee_id": Ref("dev")},
    "comments.create": {"content": "a new comment"},
    "comments.update": {"content": "an edited comment"},
}

#: The HTTP status of each valid body.
SUCCESS = {
    "users.create": 201,
    "projects.create": 201,
    "members.add": 201,
    "bugs.create": 201,
    "comments.create": 201,
}

assert set(VALID) == set(ENDPOINTS)


@dataclass
class World:
    api: Api
    ids: dict[str, int]
    headers: dict[str, str]

    def body(self, body: Any) -> Any:
        if isinstance(body, dict):
            return {k: self.ids[v] if isinstance(v, Ref) else v for k, v in body.items()}
        return body

    async def send(self, endpoint: str, **kwargs: Any) -> httpx.Response:
        method, path = ENDPOINTS[endpoint]
        if "json" in kwargs:
            kwargs["json"] = self.body(kwargs["json"])
        return await self.send_to(path.format(**self.ids), method, **kwargs)

    async def send_to(self, path: str, method: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.headers)
        return await self.api.client.request(method, V1 + path, **kwargs)


@pytest.fixture
async def world(api: Api, factory: Factory) -> World:
    root = await factory.user(Role.ADMIN, name="root")
    dev = await factory.user(Role.DEVELOPER)
    outsider = await factory.user(Role.DEVELOPER)
    suspended = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev, suspended)
    bug = await factory.bug(project, dev)
    comment = await factory.comment(bug, root)
    status = UserStatusChange(status=UserStatus.SUSPENDED)
    await users.change_user_status(api.ctx, await factory.admin(), suspended.id, status)
    ids = {
        "root": root.id,
        "dev": dev.id,
        "outsider": outsider.id,
        "suspended": suspended.id,
        "project": project.id,
        "bug": bug.id,
        "comment": comment.id,
    }
    return World(api=api, ids=ids, headers=await api.login(root))


async def refused(
    world: World, endpoint: str, status: int, code: str, **request: Any
) -> dict[str, Any]:
    """Send the request; assert the error and that the database did not change; the payload."""
    before = await snapshot(world.api.ctx)
    response = await world.send(endpoint, **request)
    payload = error_payload(response, status, code)
    assert await snapshot(world.api.ctx) == before
    return payload


def with_(endpoint: str, **changes: Any) -> dict[str, Any]:
    return {**VALID[endpoint], **changes}


# --- the baseline: each valid body is accepted ---------------------------------------------


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_the_valid_body_is_accepted(world: World, endpoint: str) -> None:
    """Guards the cases below: they fail because of what they change, nothing else."""
    before = await snapshot(world.api.ctx)

    response = await world.send(endpoint, json=VALID[endpoint])

    assert response.status_code == SUCCESS.get(endpoint, 200), response.text
    if endpoint != "auth.token":
        assert (await snapshot(world.api.ctx))["outbox.max_id"] > before["outbox.max_id"]


# --- missing fields --------------------------------------------------------------------------

MISSING = [
    ("auth.token", {}, ["username", "password"]),
    ("auth.token", {"username": "root"}, ["password"]),
    ("users.create", {}, ["username", "email", "password"]),
    ("users.create", {"username": "newbie", "password": "pw-long-enough"}, ["email"]),
    ("users.status", {}, ["status"]),
    ("projects.create", {"description": "no name"}, ["name"]),
    ("members.add", {}, ["user_id"]),
    ("bugs.create", {}, ["project_id", "title"]),
    ("bugs.create", {"project_id": Ref("project"), "description": "no title"}, ["title"]),
    # Missing fields are reported first, even when others are also wrong.
    ("bugs.create", {"title": 5, "priority": "urgent"}, ["project_id"]),
    ("bugs.status", {}, ["status"]),
    ("bugs.assign", {}, ["assignee_id"]),
    ("comments.create", {}, ["content"]),
    ("comments.update", {}, ["content"]),
]


@pytest.mark.parametrize(("endpoint", "body", "fields"), MISSING)
async def test_missing_fields_are_named(
    world: World, endpoint: str, body: dict[str, Any], fields: list[str]
) -> None:
    payload = await refused(world, endpoint, 422, "missing_required_fields", json=body)

    assert payload["fields"] == fields
    for field in fields:
        assert field in payload["message"]


# --- invalid values ------------------------------------------------------------------------


def case(id_: str, endpoint: str, changes: dict[str, Any], *errors: tuple[str, str]) -> Any:
    return pytest.param(endpoint, with_(endpoint, **changes), list(errors), id=id_)


def _invalid() -> Iterator[Any]:
    """(endpoint, body, [(field, rule), ...]) for `validation_failed`."""
    long = "x" * 10_001
    # Wrong JSON types.
    yield case("type-auth-username", "auth.token", {"username": 123}, ("username", "string_type"))
    yield case("type-auth-password", "auth.token", {"password": ["x"]}, ("password", "string_type"))
    yield case("type-user-email", "users.create", {"email": 5}, ("email", "string_type"))
    yield case("type-user-name", "users.create", {"username": ["a"]}, ("username", "string_type"))
    yield case("type-update-name", "users.update", {"username": 42}, ("username", "string_type"))
    yield case("type-update-role", "users.update", {"role": 1}, ("role", "enum"))
    yield case("type-status", "users.status", {"status": 3}, ("status", "enum"))
    yield case("type-project-name", "projects.create", {"name": {"a": 1}}, ("name", "string_type"))
    yield case(
        "type-project-desc", "projects.create", {"description": 5}, ("description", "string_type")
    )
    yield case("type-project-update", "projects.update", {"name": []}, ("name", "string_type"))
    yield case("type-member-str", "members.add", {"user_id": "abc"}, ("user_id", "int_type"))
    yield case("type-member-bool", "members.add", {"user_id": True}, ("user_id", "int_type"))
    yield case("type-member-float", "members.add", {"user_id": 1.5}, ("user_id", "int_type"))
    yield case("type-member-numeric-str", "members.add", {"user_id": "2"}, ("user_id", "int_type"))
    yield case("type-bug-project", "bugs.create", {"project_id": "x"}, ("project_id", "int_type"))
    yield case("type-bug-title", "bugs.create", {"title": 7}, ("title", "string_type"))
    yield case(
        "type-bug-assignee", "bugs.create", {"assignee_id": [1]}, ("assignee_id", "int_type")
    )
    yield case("type-update-title", "bugs.update", {"title": False}, ("title", "string_type"))
    yield case(
        "type-update-desc", "bugs.update", {"description": 1}, ("description", "string_type")
    )
    yield case("type-bug-status", "bugs.status", {"status": None}, ("status", "enum"))
    yield case("type-assign", "bugs.assign", {"assignee_id": "dev"}, ("assignee_id", "int_type"))
    yield case("type-comment", "comments.create", {"content": 12}, ("content", "string_type"))
    yield case(
        "type-comment-null", "comments.update", {"content": None}, ("content", "string_type")
    )
    yield case(
        "type-two-fields",
        "bugs.create",
        {"title": 7, "priority": 3},
        ("title", "string_type"),
        ("priority", "enum"),
    )

    # Oversize text. Sanitized text fields break `too_long` (the limit is checked after
    # sanitizing); plain strings (usernames, passwords) `string_too_long`.
    too_long = "too_long"
    str_too_long = "string_too_long"
    yield case(
        "long-auth-username", "auth.token", {"username": "u" * 65}, ("username", str_too_long)
    )
    yield case("long-username", "users.create", {"username": "u" * 33}, ("username", str_too_long))
    yield case("long-password", "users.create", {"password": "p" * 129}, ("password", str_too_long))
    yield case(
        "short-password", "users.create", {"password": "short"}, ("password", "string_too_short")
    )
    yield case(
        "long-username-update", "users.update", {"username": "u" * 33}, ("username", str_too_long)
    )
    yield case("long-project-name", "projects.create", {"name": "n" * 101}, ("name", too_long))
    yield case(
        "long-project-desc",
        "projects.create",
        {"description": "d" * 2001},
        ("description", too_long),
    )
    yield case("long-project-rename", "projects.update", {"name": "n" * 101}, ("name", too_long))
    yield case("long-title", "bugs.create", {"title": "t" * 201}, ("title", too_long))
    yield case("long-description", "bugs.create", {"description": long}, ("description", too_long))
    yield case("long-title-update", "bugs.update", {"title": "t" * 201}, ("title", too_long))
    yield case("long-desc-update", "bugs.update", {"description": long}, ("description", too_long))
    yield case("long-comment", "comments.create", {"content": long}, ("content", too_long))
    yield case("long-comment-update", "comments.update", {"content": long}, ("content", too_long))

    # Values outside an enum.
    yield case("enum-role", "users.create", {"role": "superuser"}, ("role", "enum"))
    yield case("enum-user-status", "users.create", {"status": "banned"}, ("status", "enum"))
    yield case("enum-role-update", "users.update", {"role": "root"}, ("role", "enum"))
    yield case("enum-status-change", "users.status", {"status": "deleted"}, ("status", "enum"))
    yield case("enum-priority", "bugs.create", {"priority": "urgent"}, ("priority", "enum"))
    yield case("enum-priority-case", "bugs.create", {"priority": "HIGH"}, ("priority", "enum"))
    yield case("enum-priority-update", "bugs.update", {"priority": "p0"}, ("priority", "enum"))
    yield case("enum-bug-status", "bugs.status", {"status": "done"}, ("status", "enum"))

    # Unknown fields, on every endpoint, and fields that have their own action.
    for endpoint in ENDPOINTS:
        yield case(f"extra-{endpoint}", endpoint, {"extra": 1}, ("extra", "extra_forbidden"))
    forbidden = "extra_forbidden"
    yield case("extra-bug-status", "bugs.create", {"status": "closed"}, ("status", forbidden))
    yield case("extra-bug-reporter", "bugs.create", {"reporter_id": 1}, ("reporter_id", forbidden))
    yield case("extra-bug-assignee", "bugs.update", {"assignee_id": 1}, ("assignee_id", forbidden))
    yield case("extra-user-status", "users.update", {"status": "active"}, ("status", forbidden))
    yield case("extra-user-id", "users.create", {"id": 1}, ("id", forbidden))
    yield case("extra-comment-author", "comments.create", {"user_id": 1}, ("user_id", forbidden))

    # Control characters: text that is empty once they are stripped, and usernames.
    short = "too_short"
    yield case("ctrl-title", "bugs.create", {"title": "\x00\x01\x1f\x7f"}, ("title", short))
    yield case("ctrl-title-blank", "bugs.create", {"title": " \t \n "}, ("title", short))
    yield case("ctrl-title-update", "bugs.update", {"title": "\x07\x08\r\n"}, ("title", short))
    yield case("ctrl-project-name", "projects.create", {"name": "\x00\x1b"}, ("name", short))
    yield case("ctrl-project-rename", "projects.update", {"name": "\x9b\x85"}, ("name", short))
    yield case("ctrl-comment", "comments.create", {"content": "\x00\x01"}, ("content", short))
    yield case(
        "ctrl-comment-update", "comments.update", {"content": "\r\n\x00"}, ("content", short)
    )
    yield case("empty-comment", "comments.create", {"content": ""}, ("content", short))
    pattern = "string_pattern_mismatch"
    yield case("ctrl-username", "users.create", {"username": "bad\x01name"}, ("username", pattern))
    yield case("space-username", "users.create", {"username": "bad name"}, ("username", pattern))
    yield case("newline-username", "users.create", {"username": "bad\nname"}, ("username", pattern))
    yield case(
        "tab-username-update", "users.update", {"username": "tab\tname"}, ("username", pattern)
    )
    yield case("html-username", "users.create", {"username": "<b>x</b>"}, ("username", pattern))

    # Email syntax.
    for i, email in enumerate(
        ["not-an-email", "a@", "@example.com", "u@@example.com", "u@ex ample.com"]
    ):
        yield case(f"email-{i}", "users.create", {"email": email}, ("email", "value_error"))
    yield case("email-update", "users.update", {"email": "nope"}, ("email", "value_error"))


@pytest.mark.parametrize(("endpoint", "body", "errors"), list(_invalid()))
async def test_invalid_values_are_refused_with_the_failing_fields(
    world: World, endpoint: str, body: dict[str, Any], errors: list[tuple[str, str]]
) -> None:
    payload = await refused(world, endpoint, 422, "validation_failed", json=body)

    assert [(f["field"], f["rule"]) for f in payload["fields"]] == errors
    for field in payload["fields"]:
        assert isinstance(field["message"], str) and field["message"]
        assert field["field"] in payload["message"]


def _conflicting() -> Iterator[Any]:
    """Values that are well-formed but name the wrong thing: the current state refuses them
    (checked by the services), so the same request could succeed later: 409, not 422."""
    yield case("member-unknown", "members.add", {"user_id": 999}, ("user_id", "exists"))
    yield case("assignee-unknown", "bugs.create", {"assignee_id": 999}, ("assignee_id", "exists"))
    yield case(
        "assignee-outsider",
        "bugs.create",
        {"assignee_id": Ref("outsider")},
        ("assignee_id", "project_member"),
    )
    yield case(
        "assign-outsider",
        "bugs.assign",
        {"assignee_id": Ref("outsider")},
        ("assignee_id", "project_member"),
    )
    yield case(
        "assign-suspended",
        "bugs.assign",
        {"assignee_id": Ref("suspended")},
        ("assignee_id", "active"),
    )


@pytest.mark.parametrize(("endpoint", "body", "errors"), list(_conflicting()))
async def test_values_the_current_state_refuses_are_conflicts_naming_the_field(
    world: World, endpoint: str, body: dict[str, Any], errors: list[tuple[str, str]]
) -> None:
    payload = await refused(world, endpoint, 409, "conflict", json=body)

    assert [(f["field"], f["rule"]) for f in payload["fields"]] == errors
    assert errors[0][0] in payload["message"]


async def test_a_long_value_is_not_echoed_back(world: World) -> None:
    """Error bodies name the field and the rule, not the (possibly huge) input."""
    payload = await refused(
        world, "bugs.create", 422, "validation_failed", json=with_("bugs.create", title="t" * 5000)
    )

    assert "t" * 300 not in str(payload)


# --- bodies that are not a JSON object -----------------------------------------------------

NOT_AN_OBJECT = {
    "not-json": b"not json",
    "truncated": b'{"title": "x"',
    "array": b'[{"title": "x"}]',
    "string": b'"a string"',
    "number": b"42",
    "null": b"null",
}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_a_body_that_is_not_a_json_object_is_refused(world: World, endpoint: str) -> None:
    """Not JSON, or JSON but not an object: `invalid_message_format`; not declared as JSON:
    `unsupported_media_type`; no body at all: the body is a missing field. (One test per
    endpoint, for speed.)"""
    as_json = {**world.headers, "Content-Type": "application/json"}
    requests: dict[str, dict[str, Any]] = {
        name: {"content": content, "headers": as_json} for name, content in NOT_AN_OBJECT.items()
    }
    for name, request in requests.items():
        try:
            await refused(world, endpoint, 400, "invalid_message_format", **request)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc

    # A valid body not declared as JSON: 415, and the message names what was declared.
    for declared in ("text/plain", "application/x-www-form-urlencoded"):
        payload = await refused(
            world,
            endpoint,
            415,
            "unsupported_media_type",
            content=orjson.dumps(world.body(VALID[endpoint])),
            headers={**world.headers, "Content-Type": declared},
        )
        assert declared in payload["message"] and "application/json" in payload["message"]

    payload = await refused(world, endpoint, 422, "missing_required_fields")
    assert payload["fields"] == ["body"]


# --- control characters inside text are stripped, newlines kept where text is multi-line ---


async def test_control_characters_are_stripped_from_bug_text(world: World) -> None:
    body = {
        "project_id": world.ids["project"],
        "title": "Crash\x00 on\x07 save\x1b\n",
        "description": "step 1\r\nstep 2\x00\x08\n\tindented\x7f\x9b",
    }
    created = await world.send("bugs.create", json=body)
    assert created.status_code == 201, created.text
    bug = created.json()
    assert bug["title"] == "Crash on save"
    assert bug["description"] == "step 1\nstep 2\n\tindented"

    edited = await world.send_to(
        f"/bugs/{bug['id']}", "PATCH", json={"title": "\x01Fixed\x02 title"}
    )
    assert edited.json()["title"] == "Fixed title"

    stored = (await world.send_to(f"/bugs/{bug['id']}", "GET")).json()
    assert (stored["title"], stored["description"]) == ("Fixed title", "step 1\nstep 2\n\tindented")


async def test_control_characters_are_stripped_from_comments_and_projects(world: World) -> None:
    comment = await world.send("comments.create", json={"content": "first\x08 line\r\nsecond\x00"})
    assert comment.status_code == 201, comment.text
    assert comment.json()["content"] == "first line\nsecond"
    updated = await world.send("comments.update", json={"content": "a\x1b[31m\nb"})
    assert updated.json()["content"] == "a[31m\nb"

    project = await world.send(
        "projects.create", json={"name": "Apo\x00llo\n", "description": "line\x07 1\nline 2"}
    )
    assert project.status_code == 201, project.text
    assert (project.json()["name"], project.json()["description"]) == ("Apollo", "line 1\nline 2")
    stored = (await world.send_to(f"/projects/{project.json()['id']}", "GET")).json()
    assert (stored["name"], stored["description"]) == ("Apollo", "line 1\nline 2")


async def test_length_limits_apply_to_the_text_as_sent_and_as_stored(world: World) -> None:
    """/openapi.json's maxLength counts what is sent; the database holds what is left after
    sanitizing. Both must fit."""
    title = "t" * 195 + "\x00" * 5
    created = await world.send("bugs.create", json=with_("bugs.create", title=title))
    assert created.status_code == 201, created.text
    assert created.json()["title"] == "t" * 195

    payload = await refused(
        world, "bugs.create", 422, "validation_failed", json=with_("bugs.create", title=title + "!")
    )
    assert [(f["field"], f["rule"]) for f in payload["fields"]] == [("title", "too_long")]


# --- bodies over the size limit ------------------------------------------------------------


@pytest.fixture
async def small_api(api: Api) -> AsyncIterator[Api]:
    """A second app on the same database that accepts at most 2048-byte bodies."""
    async with running_api(api.ctx, max_request_bytes=2048) as small:
        yield small


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 512):
        yield data[start : start + 512]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("endpoint", "field"),
    [
        ("bugs.create", "description"),
        ("bugs.update", "description"),
        ("comments.create", "content"),
    ],
)
async def test_a_body_over_the_size_limit_is_refused(
    world: World, small_api: Api, endpoint: str, field: str, chunked: bool
) -> None:
    """3000 characters are a valid description or comment, but too many bytes here."""
    data = orjson.dumps(world.body(with_(endpoint, **{field: "d" * 3000})))
    world.api = small_api
    kwargs: dict[str, Any] = {
        "headers": {**world.headers, "Content-Type": "application/json"},
        "content": _chunks(data) if chunked else data,
    }

    payload = await refused(world, endpoint, 413, "message_too_large", **kwargs)

    assert "2048" in payload["message"]


async def test_a_body_under_the_size_limit_is_accepted(world: World, small_api: Api) -> None:
    world.api = small_api
    body = with_("bugs.create", description="d" * 1500)

    response = await world.send("bugs.create", json=body)

    assert response.status_code == 201, response.text
