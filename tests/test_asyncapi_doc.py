"""docs/asyncapi.yaml says what /ws does: drift between them fails here.

- it names every client message type, command, server message type, error code and close
  code, and every (type, event) pair of the event catalog;
- the command and subscription payload schemas have the fields, required fields and limits of
  the pydantic models the gateway validates with;
- its examples, and the real messages of a live server (every server message type and every
  event, with the payloads the services write), match its schemas;
- the AsyncAPI CLI accepts it (`CI=true asyncapi validate docs/asyncapi.yaml`).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from pydantic import BaseModel

from bugstream.domain.enums import BugStatus, NotificationType, Priority, Role, UserStatus
from bugstream.domain.errors import ErrorCode
from bugstream.domain.events import EVENT_NAMES, REQUIRED_PAYLOAD_FIELDS
from bugstream.domain.models import (
    MembershipAdd,
    ProjectCreate,
    ProjectUpdate,
    UserStatusChange,
    UserUpdate,
)
from bugstream.domain.protocol import (
    ClientMessage,
    CloseCode,
    Command,
    ServerMessage,
    is_terminal,
    needs_new_token,
)
from bugstream.gateway.commands import COMMANDS
from bugstream.gateway.event_frames import skipped_frame
from bugstream.gateway.subscriptions import SubscriptionPayload
from bugstream.services import projects, reminders, users
from tests.conftest import skip_or_fail
from tests.support.factory import Factory
from tests.support.live import Client, live_server

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "asyncapi.yaml"
GATEWAY_SRC = ROOT / "src" / "bugstream" / "gateway"

#: ServerMessage members the server never sends (so the document does not describe them).
NEVER_SENT = {ServerMessage.SUBSCRIBED}
#: Server messages the live test below cannot provoke cheaply (`skipped` needs a client
#: megabytes behind); `test_skipped_frames_match_their_schema` checks the real frame instead.
NOT_PROVOKED = {ServerMessage.SKIPPED.value}

Json = Any


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    return loaded


def messages(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = doc["components"]["messages"]
    return found


def resolve(doc: dict[str, Any], schema: Json) -> Json:
    """Follow `$ref`s (local ones, as the document uses) to the schema they name."""
    while isinstance(schema, dict) and "$ref" in schema:
        target: Json = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def operation_messages(doc: dict[str, Any], action: str) -> set[str]:
    """Names of the messages of every operation with this action (`send` / `receive`); the
    replies to what the server receives count as sent."""
    names = set()
    for operation in doc["operations"].values():
        if operation["action"] == action:
            names |= {m["$ref"].rsplit("/", 1)[1] for m in operation["messages"]}
        if action == "send" and operation["action"] == "receive" and "reply" in operation:
            names |= {m["$ref"].rsplit("/", 1)[1] for m in operation["reply"]["messages"]}
    return names


# ---- a small JSON Schema checker for the keywords the document uses -----------------------

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_KNOWN = {
    "type", "const", "enum", "required", "properties", "additionalProperties", "items",
    "allOf", "anyOf", "oneOf", "minLength", "maxLength", "maxItems", "minimum", "pattern",
    "description", "default", "format", "examples", "title",
}  # fmt: skip


def schema_errors(doc: dict[str, Any], schema: Json, value: Json, path: str = "$") -> list[str]:
    schema = resolve(doc, schema)
    unknown = set(schema) - _KNOWN
    assert not unknown, f"{path}: the checker does not know {unknown}; teach it"
    errors: list[str] = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            return [f"{path}: {value!r} is not of type {types}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value} is below {schema['minimum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}: lacks required {name!r}")
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(doc, properties[name], item, f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: {name!r} is not allowed")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += schema_errors(doc, schema["items"], item, f"{path}[{i}]")
    for sub in schema.get("allOf", []):
        errors += schema_errors(doc, sub, value, path)
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            matches = [not schema_errors(doc, s, value, path) for s in schema[keyword]]
            if not any(matches) or (keyword == "oneOf" and sum(matches) > 1):
                errors.append(f"{path}: {value!r} matches {sum(matches)} of the {keyword}")
    return errors


def message_key(message: dict[str, Any]) -> str:
    """The document's name for a message: `type.event` for events (they have an `event_id`),
    else its `type` (`presence`, which has an `event` but no id, is one message)."""
    if "event" in message and "event_id" in message:
        return f"{message['type']}.{message['event']}"
    kind: str = message["type"]
    return kind


def check_message(doc: dict[str, Any], message: dict[str, Any]) -> list[str]:
    key = message_key(message)
    documented = messages(doc).get(key)
    if documented is None:
        return [f"{key}: not documented"]
    return schema_errors(doc, documented["payload"], message, key)


# ---- names --------------------------------------------------------------------------------


def test_every_client_message_and_command_is_a_documented_received_message(
    doc: dict[str, Any],
) -> None:
    received = operation_messages(doc, "receive")
    for kind in [*ClientMessage, *Command]:
        message = messages(doc).get(kind.value)
        assert message is not None, f"docs/asyncapi.yaml lacks the client message {kind.value}"
        type_schema = resolve(doc, message["payload"])["properties"]["type"]
        assert type_schema["const"] == kind.value
        assert kind.value in received, f"no `receive` operation carries {kind.value}"
        assert kind.value in doc["channels"]["ws"]["messages"]


def test_every_server_message_type_is_a_documented_sent_message(doc: dict[str, Any]) -> None:
    sent = operation_messages(doc, "send")
    for kind in ServerMessage:
        if kind in NEVER_SENT:
            continue
        assert kind.value in messages(doc), f"docs/asyncapi.yaml lacks the message {kind.value}"
        assert kind.value in sent, f"no `send` operation carries {kind.value}"
        assert kind.value in doc["channels"]["ws"]["messages"]


def test_message_types_documented_as_never_sent_are_not_sent() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in GATEWAY_SRC.glob("*.py"))
    for kind in NEVER_SENT:
        assert f"ServerMessage.{kind.name}" not in source, (
            f"the gateway now sends {kind.value!r}: document it in docs/asyncapi.yaml"
        )


def test_every_event_of_the_catalog_is_documented_with_its_required_fields(
    doc: dict[str, Any],
) -> None:
    sent = operation_messages(doc, "send")
    expected = set()
    for event_type, names in EVENT_NAMES.items():
        for name in names:
            key = f"{event_type.value}.{name.value}"
            expected.add(key)
            assert key in messages(doc), f"docs/asyncapi.yaml lacks the event {key}"
            assert key in sent, f"no `send` operation carries {key}"
            envelope = resolve(doc, messages(doc)[key]["payload"])
            assert set(envelope["required"]) == {"type", "event", "payload", "event_id"}
            assert envelope["properties"]["type"]["const"] == event_type.value
            assert envelope["properties"]["event"]["const"] == name.value
            required = required_fields(doc, envelope["properties"]["payload"])
            missing = set(REQUIRED_PAYLOAD_FIELDS[event_type]) - required
            assert not missing, f"{key}: the payload schema does not require {missing}"
    documented_events = {
        key
        for key, m in messages(doc).items()
        if "event_id" in resolve(doc, m["payload"])["properties"]
    }
    assert documented_events == expected, "events documented that the catalog does not have"


def required_fields(doc: dict[str, Any], schema: Json) -> set[str]:
    schema = resolve(doc, schema)
    found = set(schema.get("required", []))
    for sub in schema.get("allOf", []):
        found |= required_fields(doc, sub)
    return found


def test_error_codes_are_the_catalog(doc: dict[str, Any]) -> None:
    schema = resolve(doc, doc["components"]["schemas"]["ErrorPayload"])
    documented = schema["properties"]["code"]["enum"]
    assert sorted(documented) == sorted(c.value for c in ErrorCode)


def test_enumerations_are_the_domain_ones(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for enum in (BugStatus, Priority, Role, UserStatus, NotificationType):
        assert schemas[enum.__name__]["enum"] == [member.value for member in enum]


def test_close_codes_are_documented_with_the_reconnect_rule(doc: dict[str, Any]) -> None:
    rows = {row["code"]: row for row in doc["channels"]["ws"]["x-close-codes"]}
    assert set(rows) == {int(c) for c in CloseCode}
    for code in CloseCode:
        if needs_new_token(code):
            expected = "no; with a new token only"
        elif is_terminal(code):
            expected = "no"
        else:
            expected = "yes, with backoff"
        assert rows[int(code)]["name"] == code.name
        assert rows[int(code)]["reconnect"] == expected, f"close code {int(code)}"


def test_the_asyncapi_cli_validates_the_document() -> None:
    cli = shutil.which("asyncapi")
    if cli is None:
        skip_or_fail("the AsyncAPI CLI is not installed (npm install -g @asyncapi/cli)")
    assert cli is not None
    result = subprocess.run(
        [cli, "validate", str(DOC_PATH)],
        env={**os.environ, "CI": "true"},  # CI=true: the CLI sends no analytics
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- payload schemas against the models the gateway validates with ------------------------


def limits(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The type-independent limits of one property: enum, lengths, item count."""
    found: dict[str, Any] = {}
    stack = [schema]
    while stack:
        item = stack.pop()
        if "$ref" in item:
            ref = item["$ref"]
            item = defs[ref.rsplit("/", 1)[1]] if ref.startswith("#/$defs/") else item
        for key in ("enum", "minLength", "maxLength", "maxItems"):
            if key in item:
                found[key] = sorted(item[key]) if key == "enum" else item[key]
        stack += item.get("anyOf", []) + item.get("allOf", [])
        if "items" in item:
            stack.append(item["items"])
    return found


def doc_limits(doc: dict[str, Any], schema: Json) -> dict[str, Any]:
    found: dict[str, Any] = {}
    stack = [schema]
    while stack:
        item = resolve(doc, stack.pop())
        for key in ("enum", "minLength", "maxLength", "maxItems"):
            if key in item:
                found[key] = sorted(item[key]) if key == "enum" else item[key]
        stack += item.get("anyOf", []) + item.get("allOf", [])
    return found


def model_pairs(doc: dict[str, Any]) -> Iterator[tuple[str, type[BaseModel], Json]]:
    for command, spec in COMMANDS.items():
        envelope = resolve(doc, messages(doc)[command.value]["payload"])
        yield command.value, spec.payload, envelope["properties"]["payload"]
    for kind in (ClientMessage.SUBSCRIBE, ClientMessage.UNSUBSCRIBE):
        envelope = resolve(doc, messages(doc)[kind.value]["payload"])
        yield kind.value, SubscriptionPayload, envelope["properties"]["payload"]


def test_command_payloads_have_the_models_fields_and_limits(doc: dict[str, Any]) -> None:
    for name, model, documented in model_pairs(doc):
        schema = resolve(doc, documented)
        model_schema = model.model_json_schema()
        defs = model_schema.get("$defs", {})
        properties = model_schema.get("properties", {})
        assert set(schema.get("properties", {})) == set(properties), name
        assert set(schema.get("required", [])) == set(model_schema.get("required", [])), name
        assert schema.get("additionalProperties") is False, f"{name}: unknown fields refused"
        envelope = resolve(doc, messages(doc)[name]["payload"])
        assert ("payload" in envelope["required"]) == bool(model_schema.get("required")), name
        for field, field_schema in properties.items():
            expected = limits(field_schema, defs)
            actual = doc_limits(doc, schema["properties"][field])
            assert actual == expected, f"{name}.{field}: documented {actual}, model {expected}"


# ---- examples and real messages match the schemas -----------------------------------------


def test_every_example_matches_its_message_schema(doc: dict[str, Any]) -> None:
    for name, message in messages(doc).items():
        assert message.get("examples"), f"{name} has no example"
        for example in message["examples"]:
            errors = schema_errors(doc, message["payload"], example["payload"], name)
            assert not errors, errors


def frame_message(frame: bytes) -> dict[str, Any]:
    """The JSON message in one unmasked server text frame."""
    length, start = frame[1] & 0x7F, 2
    if length == 126:
        length, start = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, start = int.from_bytes(frame[2:10], "big"), 10
    message: dict[str, Any] = orjson.loads(frame[start : start + length])
    return message


def test_skipped_frames_match_their_schema(doc: dict[str, Any]) -> None:
    message = frame_message(skipped_frame([1043, 1045]))
    assert message["type"] == ServerMessage.SKIPPED.value
    assert check_message(doc, message) == []


class Recorder:
    """Sends requests and keeps every message each client receives."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._ids = iter(range(1, 1_000_000))

    async def ask(self, client: Client, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a request; the `ack`, `error` or `pong` that answers it."""
        request_id = f"r{next(self._ids)}"
        await client.send({"type": kind, "request_id": request_id, "payload": payload})
        while True:
            message = await client.next()
            self.seen.append(message)
            if message["type"] == "pong" and kind == "ping":
                return message
            answers = message["type"] in ("ack", "error")
            if answers and message["payload"].get("request_id") == request_id:
                return message

    async def result(self, client: Client, kind: str, payload: dict[str, Any]) -> Any:
        answer = await self.ask(client, kind, payload)
        assert answer["type"] == "ack", answer
        return answer["payload"]["result"]

    async def drain(self, *clients: Client) -> None:
        async def one(client: Client) -> list[dict[str, Any]]:
            found = []
            while True:
                try:
                    found.append(await client.next(0.3))
                except TimeoutError:
                    return found

        for found in await asyncio.gather(*(one(c) for c in clients)):
            self.seen += found


async def test_real_messages_match_the_documented_schemas(
    doc: dict[str, Any], factory: Factory
) -> None:
    lead = await factory.user(Role.MANAGER)
    dev = await factory.user(Role.DEVELOPER)
    watcher = await factory.user(Role.ADMIN)
    admin = Factory.actor(watcher)
    project = await factory.project(lead, dev)
    rec = Recorder()
    window = 20
    async with live_server(factory.ctx, replay_window_events=window) as live:
        watcher_ws = await live.connect(watcher)
        lead_ws = await live.connect(lead)
        dev_ws = await live.connect(dev)
        for client in (watcher_ws, lead_ws, dev_ws):
            rec.seen.append({"type": "welcome", "payload": client.welcome})

        await rec.ask(lead_ws, "ping", {})
        await rec.result(lead_ws, "auth", {"token": live.token_for(lead)})
        await rec.result(lead_ws, "subscribe", {"projects": [project.id]})
        await rec.result(lead_ws, "subscribe", {"all": True})
        error = await rec.ask(lead_ws, "bug_report.create", {"project_id": project.id})
        assert error["payload"]["code"] == "missing_required_fields"
        error = await rec.ask(lead_ws, "bug_report.create", {"project_id": project.id, "title": ""})
        assert error["payload"]["code"] == "validation_failed"
        assert (await rec.ask(lead_ws, "bug_report.explode", {}))["type"] == "error"

        # Every command: bug_report.* and comment.* events, and notifications for `dev`.
        create = {"project_id": project.id, "title": "Crash", "assignee_id": dev.id}
        bug = await rec.result(lead_ws, "bug_report.create", create)
        await rec.result(lead_ws, "bug_report.update", {"id": bug["id"], "priority": "high"})
        await rec.result(
            lead_ws, "bug_report.change_status", {"id": bug["id"], "status": "in_progress"}
        )
        await rec.result(lead_ws, "bug_report.unassign", {"id": bug["id"]})
        await rec.result(lead_ws, "bug_report.assign", {"id": bug["id"], "assignee_id": dev.id})
        comment = await rec.result(
            lead_ws, "comment.create", {"bug_report_id": bug["id"], "content": "Seen it"}
        )
        await rec.result(lead_ws, "comment.update", {"id": comment["id"], "content": "Again"})
        await rec.result(lead_ws, "comment.delete", {"id": comment["id"]})
        await reminders.remind_now(factory.ctx, admin, bug["id"])
        await rec.drain(dev_ws)
        notification = next(m for m in rec.seen if message_key(m) == "notification.bug_assigned")
        await rec.result(dev_ws, "notification.mark_read", {"id": notification["payload"]["id"]})
        await rec.result(dev_ws, "notification.mark_all_read", {})
        await rec.result(dev_ws, "presence.view", {"bug_report_id": bug["id"]})
        await rec.result(dev_ws, "presence.view", {"bug_report_id": None})
        live.gateway.presence.resync()  # as after a Redis channel was lost and is back
        await rec.drain(dev_ws)
        await rec.result(lead_ws, "bug_report.delete", {"id": bug["id"]})

        # Project, membership and user events (the admin sees them all).
        other = await factory.user(Role.VIEWER)
        second = (await projects.create_project(factory.ctx, admin, ProjectCreate(name="B"))).value
        await projects.update_project(
            factory.ctx, admin, second.id, ProjectUpdate(description="new")
        )
        await projects.add_member(factory.ctx, admin, second.id, MembershipAdd(user_id=other.id))
        await projects.remove_member(factory.ctx, admin, second.id, other.id)
        await projects.delete_project(factory.ctx, admin, second.id)
        await users.update_user(factory.ctx, admin, other.id, UserUpdate(username="renamed"))
        status = UserStatusChange(status=UserStatus.SUSPENDED)
        await users.change_user_status(factory.ctx, admin, other.id, status)
        await users.delete_user(factory.ctx, admin, other.id)
        await rec.drain(watcher_ws, lead_ws, dev_ws)

        # Resuming from an id older than the window: resync_required.
        for i in range(window + 1):
            await factory.bug(project, lead, title=f"filler {i}")
        late = await live.connect(dev, query="last_event_id=1")
        rec.seen.append({"type": "welcome", "payload": late.welcome})
        # Waited for, not drained: on a loaded machine it may come after a 0.3 s lull.
        rec.seen.append(await late.expect(lambda m: m.get("type") == "resync_required", 10))
        await rec.drain(late, watcher_ws, lead_ws, dev_ws)

    errors = [e for message in rec.seen for e in check_message(doc, message)]
    assert not errors, errors
    seen = {message_key(m) for m in rec.seen}
    server_messages = operation_messages(doc, "send")
    unseen = server_messages - seen - NOT_PROVOKED
    assert not unseen, f"documented server messages this test never saw: {unseen}"
