"""Every error the /ws gateway answers with, in the spec's exact shape, and the connection
staying usable after each one (an error never closes the connection, except abuse: see
test_limits.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from bugstream.domain.enums import Role
from bugstream.domain.protocol import REQUEST_ID_MAX
from bugstream.domain.text import TITLE_MAX
from tests.support.factory import Factory
from tests.support.live import Client, live_server

# Generous limits so that only the limit a test is about can trigger.
CALM = {"ws_rate_limit_capacity": 10_000, "ws_abuse_threshold": 10_000}


async def assert_usable(client: Client, note: str = "") -> None:
    """The connection still works: a ping gets a pong, a valid command is acked."""
    await client.send({"type": "ping"})
    pong = await client.next()
    assert pong["type"] == "pong", (note, pong)
    ack = await client.command("notification.mark_all_read", {}, request_id="usable")
    assert ack == {
        "type": "ack",
        "payload": {
            "request_id": "usable",
            "command": "notification.mark_all_read",
            "result": {"ids": []},
        },
    }, note
    assert client.ws.close_code is None


async def error_after(client: Client, frame: Any) -> dict[str, Any]:
    """Send `frame`; the payload of the error that answers it (the next message)."""
    await client.send(frame)
    message = await client.next()
    assert message["type"] == "error", (frame, message)
    assert set(message) == {"type", "payload"}, message
    payload: dict[str, Any] = message["payload"]
    assert isinstance(payload["message"], str) and payload["message"], payload
    return payload


async def test_invalid_message_format_for_each_malformed_shape(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    # (what is sent, the request_id the error must carry, or None for none)
    cases: list[tuple[str, Any, Any]] = [
        ("not JSON", "this is not json", None),
        ("truncated JSON", '{"type": "ping"', None),
        ("a JSON array", '[{"type": "ping"}]', None),
        ("a JSON string", '"ping"', None),
        ("a JSON number", "42", None),
        ("JSON null", "null", None),
        ("no type", {"payload": {}, "request_id": "r-notype"}, "r-notype"),
        ("empty type", {"type": "", "request_id": "r-empty"}, "r-empty"),
        ("non-string type", {"type": 7, "request_id": 99}, 99),
        ("type is an object", {"type": {"name": "ping"}}, None),
        ("payload is a list", {"type": "ping", "payload": [1], "request_id": "r-pl"}, "r-pl"),
        ("payload is a string", {"type": "ping", "payload": "x", "request_id": "r-ps"}, "r-ps"),
        ("request_id is a list", {"type": "ping", "request_id": ["a"]}, None),
        ("request_id is a float", {"type": "ping", "request_id": 1.5}, None),
        ("request_id is a bool", {"type": "ping", "request_id": True}, None),
        ("request_id too long", {"type": "ping", "request_id": "x" * (REQUEST_ID_MAX + 1)}, None),
    ]
    async with live_server(factory.ctx, **CALM) as live:
        client = await live.connect(dev)
        for name, frame, request_id in cases:
            payload = await error_after(client, frame)
            expected_keys = {"code", "message"} | ({"request_id"} if request_id else set())
            assert set(payload) == expected_keys, (name, payload)
            assert payload["code"] == "invalid_message_format", (name, payload)
            assert payload.get("request_id") == request_id, (name, payload)
            await assert_usable(client, name)


async def test_binary_frames_are_parsed_and_invalid_utf8_in_one_is_a_format_error(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, **CALM) as live:
        client = await live.connect(dev)
        # A binary frame holding a valid message is handled like a text one.
        await client.send(b'{"type": "ping"}')
        assert (await client.next())["type"] == "pong"
        # Invalid UTF-8 in a binary frame is just a malformed message.
        payload = await error_after(client, b'{"type": "\xff\xfe"}')
        assert payload["code"] == "invalid_message_format"
        await assert_usable(client, "binary invalid utf-8")
        assert client.ws.close_code is None


async def test_text_frame_with_invalid_utf8_is_closed_with_1007(factory: Factory) -> None:
    # RFC 6455 section 8.1: a text frame's payload must be valid UTF-8, and an endpoint that
    # receives one that is not "MUST _Fail the WebSocket Connection_" (close code 1007,
    # invalid frame payload data). This is the one malformed input that closes the
    # connection; the same bytes in a binary frame get invalid_message_format (above).
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, **CALM) as live:
        client = await live.connect(dev)
        # websockets sends bytes as a text frame unchecked when asked to (text=True).
        await client.ws.send(b'{"type": "ping", "x": "\xc3\x28"}', text=True)
        code, _reason = await client.closed()
        assert code == 1007  # invalid frame payload data
        # The server let go of the connection...
        deadline = asyncio.get_running_loop().time() + 5
        while live.gateway.hub.connection_count:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        # And a new connection works.
        again = await live.connect(dev)
        await assert_usable(again, "after 1007")


async def test_unknown_event_type_echoes_the_request_id(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, **CALM) as live:
        client = await live.connect(dev)
        for request_id in ("req-1", 17):
            payload = await error_after(
                client, {"type": "bug_report.explode", "request_id": request_id, "payload": {}}
            )
            assert set(payload) == {"code", "message", "request_id"}
            assert payload["code"] == "unknown_event_type"
            assert payload["request_id"] == request_id
            assert "bug_report.explode" in payload["message"]
            await assert_usable(client, f"unknown type {request_id}")
        # Without a request id the error has none.
        payload = await error_after(client, {"type": "welcome"})
        assert payload["code"] == "unknown_event_type"
        assert "request_id" not in payload
        await assert_usable(client, "unknown type, no request id")


async def test_missing_required_fields_names_them(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, **CALM) as live:
        client = await live.connect(dev)
        cases: list[tuple[str, dict[str, Any], list[str]]] = [
            ("bug_report.create", {}, ["project_id", "title"]),
            ("bug_report.create", {"title": "t"}, ["project_id"]),
            ("bug_report.change_status", {"id": 1}, ["status"]),
            ("comment.create", {"content": "hi"}, ["bug_report_id"]),
            ("bug_report.assign", {}, ["assignee_id", "id"]),
            ("auth", {}, ["token"]),
        ]
        for kind, body, fields in cases:
            payload = await error_after(
                client, {"type": kind, "request_id": f"m-{kind}", "payload": body}
            )
            assert payload == {
                "code": "missing_required_fields",
                "message": f"missing required fields: {', '.join(fields)}",
                "fields": fields,
                "request_id": f"m-{kind}",
            }, (kind, body)
            await assert_usable(client, kind)
        # A message with no payload at all is missing every required field.
        payload = await error_after(client, {"type": "bug_report.delete", "request_id": "nop"})
        assert payload["code"] == "missing_required_fields"
        assert payload["fields"] == ["id"]
        await assert_usable(client, "no payload")


async def test_validation_failed_names_field_and_rule(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx, **CALM) as live:
        client = await live.connect(dev)
        base = {"project_id": project.id, "title": "ok"}
        cases: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
            ({**base, "priority": "urgent"}, [("priority", "enum")]),
            ({**base, "title": "x" * (TITLE_MAX + 1)}, [("title", "too_long")]),
            ({**base, "title": "   "}, [("title", "too_short")]),
            ({**base, "project_id": str(project.id)}, [("project_id", "int_type")]),
            ({**base, "project_id": True}, [("project_id", "int_type")]),
            # Beyond the store's BIGINT ids: refused, not a database overflow.
            ({**base, "project_id": 2**63}, [("project_id", "less_than_equal")]),
            ({**base, "title": 5}, [("title", "string_type")]),
            ({**base, "colour": "red"}, [("colour", "extra_forbidden")]),
            (
                {**base, "priority": "urgent", "title": "x" * (TITLE_MAX + 1)},
                [("title", "too_long"), ("priority", "enum")],
            ),
        ]
        for n, (body, expected) in enumerate(cases):
            request_id = f"v{n}"
            payload = await error_after(
                client, {"type": "bug_report.create", "request_id": request_id, "payload": body}
            )
            assert payload["code"] == "validation_failed", (body, payload)
            assert payload["request_id"] == request_id
            assert set(payload) == {"code", "message", "fields", "request_id"}
            got = [(f["field"], f["rule"]) for f in payload["fields"]]
            assert got == expected, (body, payload)
            for field in payload["fields"]:
                assert set(field) == {"field", "rule", "message"}
                assert field["message"]
                assert field["field"] in payload["message"]
            await assert_usable(client, f"validation case {n}")
        # The title limit is on the sanitized text: exactly TITLE_MAX is fine.
        ack = await client.command(
            "bug_report.create", {**base, "title": "x" * TITLE_MAX}, request_id="edge"
        )
        assert ack["type"] == "ack" and ack["payload"]["result"]["title"] == "x" * TITLE_MAX


async def test_forbidden_and_not_found_come_from_the_service(factory: Factory) -> None:
    viewer = await factory.user(Role.VIEWER)
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(viewer, dev)
    outsider_project = await factory.project()
    hidden_bug = await factory.bug(outsider_project, (await factory.user(Role.ADMIN)))
    async with live_server(factory.ctx, **CALM) as live:
        viewer_ws = await live.connect(viewer)
        payload = await error_after(
            viewer_ws,
            {
                "type": "bug_report.create",
                "request_id": "f1",
                "payload": {"project_id": project.id, "title": "not allowed"},
            },
        )
        assert set(payload) == {"code", "message", "request_id"}
        assert payload["code"] == "forbidden"
        assert payload["request_id"] == "f1"
        await assert_usable(viewer_ws, "forbidden")

        dev_ws = await live.connect(dev)
        for request_id, body in (
            ("nf-unknown", {"id": 987_654, "title": "x"}),
            # A bug in a project the developer is not a member of is not_found too.
            ("nf-hidden", {"id": hidden_bug.id, "title": "x"}),
        ):
            payload = await error_after(
                dev_ws, {"type": "bug_report.update", "request_id": request_id, "payload": body}
            )
            assert set(payload) == {"code", "message", "request_id"}
            assert payload["code"] == "not_found"
            assert payload["request_id"] == request_id
            await assert_usable(dev_ws, request_id)
        # Nothing was created by the refused commands.
        async with live.http(dev) as http:
            bugs = (await http.get("/api/v1/bugs", params={"project_id": project.id})).json()
        assert bugs["total"] == 0


async def test_rate_limited_carries_retry_after_and_the_connection_survives(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(
        factory.ctx, ws_rate_limit_capacity=3, ws_rate_limit_refill_per_second=5
    ) as live:
        client = await live.connect(dev)
        for _ in range(3):
            await client.send({"type": "ping"})
        await client.send({"type": "bug_report.create", "request_id": "over", "payload": {}})
        for _ in range(3):
            assert (await client.next())["type"] == "pong"
        error = await client.next()
        assert error["type"] == "error"
        payload = error["payload"]
        assert set(payload) == {"code", "message", "retry_after", "request_id"}, payload
        assert payload["code"] == "rate_limited"
        # The refused message was not parsed, but its request id is echoed when readable.
        assert payload["request_id"] == "over"
        assert 0 < payload["retry_after"] <= 1 / 5
        await asyncio.sleep(payload["retry_after"] + 0.05)
        await client.send({"type": "ping"})
        assert (await client.next())["type"] == "pong"
        assert client.ws.close_code is None


async def test_message_too_large_keeps_the_connection(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, ws_max_message_bytes=1024, **CALM) as live:
        client = await live.connect(dev)
        big = {"type": "ping", "request_id": "big", "payload": {"pad": "x" * 2000}}
        payload = await error_after(client, big)
        assert payload["code"] == "message_too_large"
        assert "1024" in payload["message"]
        await assert_usable(client, "too large")
        payload = await error_after(client, b"y" * 5000)
        assert payload["code"] == "message_too_large"
        await assert_usable(client, "too large binary")
