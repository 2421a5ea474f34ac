"""The event catalog says what each event means, and everything that routes events reads it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bugstream.client.events import ENTITY_FOR_TYPE, parse_event
from bugstream.domain.catalog import (
    CATALOG,
    CONFLATABLE,
    EventMeaning,
    EventName,
    EventType,
    Scope,
    TypeMeaning,
    check,
)
from bugstream.domain.enums import Role
from bugstream.domain.events import Event
from bugstream.gateway.connection import ClientInfo, Connection, Subscription
from bugstream.gateway.hub import Hub
from tests.gateway.test_coalescing_unit import WriteLog

DOCS = Path(__file__).parents[2] / "docs"


def test_a_type_without_a_meaning_fails_the_check() -> None:
    partial: dict[EventType, TypeMeaning] = {
        t: m for t, m in CATALOG.items() if t is not EventType.MEMBERSHIP
    }
    with pytest.raises(RuntimeError, match="without a meaning"):
        check(partial)


def test_a_required_field_the_entity_lacks_fails_the_check() -> None:
    broken = dict(CATALOG)
    comment = CATALOG[EventType.COMMENT]
    broken[EventType.COMMENT] = replace(comment, required=(*comment.required, "project_id"))
    with pytest.raises(RuntimeError, match="not on"):
        check(broken)


def test_a_bug_report_field_that_is_not_required_fails_the_check() -> None:
    broken = dict(CATALOG)
    broken[EventType.COMMENT] = replace(CATALOG[EventType.COMMENT], bug_report_field="nope")
    with pytest.raises(RuntimeError, match="not a required field"):
        check(broken)


def test_the_sdk_parses_events_into_the_catalogs_entity() -> None:
    """Through the SDK's parser, not its table (which is built from the catalog)."""
    at = "2026-01-05T09:00:00Z"
    payloads = {
        EventType.BUG_REPORT: {
            "id": 1, "title": "t", "description": "", "status": "open", "priority": "low",
            "assignee_id": None, "reporter_id": 2, "project_id": 3, "created_at": at,
            "updated_at": at,
        },
        EventType.MEMBERSHIP: {"project_id": 3, "user_id": 2, "created_at": at},
    }  # fmt: skip
    for event_type, payload in payloads.items():
        name = next(iter(CATALOG[event_type].events))
        message = {"type": event_type.value, "event": name.value, "payload": payload}
        event = parse_event({**message, "event_id": 9})
        assert event is not None
        assert type(event.payload) is CATALOG[event_type].payload
        assert type(event.payload) is ENTITY_FOR_TYPE[event_type]


def test_the_documented_conflatable_events_are_the_catalogs() -> None:
    text = (DOCS / "websocket.md").read_text()
    paragraph = text[text.index("**Slow clients.**") : text.index("are dropped, and the client")]
    paragraph = " ".join(paragraph.split())
    documented = set(re.findall(r"`(\w+)\.(\w+)`", paragraph))
    assert documented == {(t.value, n.value) for t, n in CONFLATABLE}


# ---- the hub routes by scope -------------------------------------------------------------


def _every_event() -> Iterator[tuple[EventType, EventName, TypeMeaning, EventMeaning]]:
    for event_type, meaning in CATALOG.items():
        for name, event_meaning in meaning.events.items():
            yield event_type, name, meaning, event_meaning


def _payload(meaning: TypeMeaning) -> dict[str, object]:
    payload: dict[str, object] = {field: 1 for field in meaning.required}
    payload.update(role="developer", status="active", username="u", project_id=7, user_id=3)
    return payload


def _hub_with_three_users() -> tuple[Hub, dict[int, tuple[Connection, WriteLog]]]:
    """User 3 (member of project 7, the user the events name), user 4 (member of project 8)
    and admin 1."""
    hub = Hub(position=0, revoke=lambda conn, code, reason: None, max_backlog_bytes=1 << 20)
    users = {}
    for user_id, role, projects in ((3, Role.DEVELOPER, {7}), (4, Role.DEVELOPER, {8}),
                                    (1, Role.ADMIN, set())):  # fmt: skip
        log = WriteLog()
        info = ClientInfo(f"c{user_id}", user_id, f"u{user_id}", "127.0.0.1", 0.0)
        conn = Connection(info, role, log, now=0.0, token_expires_at=1e12)
        hub.register(conn, role, projects, as_of=0)
        users[user_id] = (conn, log)
    return hub, users


@pytest.mark.parametrize(("event_type", "name"), [(t, n) for t, n, _, _ in _every_event()], ids=str)
async def test_who_gets_each_event_follows_its_scope(
    event_type: EventType, name: EventName
) -> None:
    meaning = CATALOG[event_type]
    expected = {
        Scope.PROJECT: {3, 1},  # members of project 7, and admins
        Scope.PERSONAL: {3},
        Scope.USER: {3, 1},
    }[meaning.scope]
    hub, users = _hub_with_three_users()
    event = Event(1, event_type, name, _payload(meaning), project_id=7, user_id=3)
    # Replays filter with `visible`; live delivery goes to the audience: both by scope.
    assert {u for u, (conn, _) in users.items() if hub.visible(conn, event)} == expected
    hub.dispatch([event])
    for _ in range(2):
        await asyncio.sleep(0)
    assert {u for u, (_, log) in users.items() if log.writes} == expected


@pytest.mark.parametrize(("event_type", "name"), [(t, n) for t, n, _, _ in _every_event()], ids=str)
def test_a_narrowed_subscription_never_hides_personal_events(
    event_type: EventType, name: EventName
) -> None:
    meaning = CATALOG[event_type]
    subscription = Subscription()
    subscription.projects = {99}  # none of the event's
    event = Event(1, event_type, name, _payload(meaning), project_id=7, user_id=3)
    wants = subscription.wants(event, user_id=3)
    if meaning.scope is not Scope.PROJECT:
        assert wants
    elif meaning.events[name].changes_access:
        assert wants  # news of one's own access (membership) is never filtered either
    else:
        assert not wants
