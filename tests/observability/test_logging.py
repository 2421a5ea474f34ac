"""Structured logs as an operator reads them: one JSON object per line (production) with the
connection and user on every connection line, readable lines in development, and a periodic
performance summary."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from bugstream.domain.enums import Role
from bugstream.observability.logging import configure_logging
from tests.support.factory import Factory
from tests.support.live import live_server

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers, level = saved
    root.setLevel(level)
    logging.getLogger("bugstream").setLevel(logging.NOTSET)


def capture(fmt: str) -> io.StringIO:
    """Configure logging as `bugstream serve` does, writing into a buffer instead of stderr."""
    configure_logging("INFO", fmt)
    buffer = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    return buffer


@pytest.fixture
def json_lines(restore_logging: None) -> Lines:
    """Switch to JSON logs; the function returns every line logged so far, parsed."""
    buffer = capture("json")
    # Per-message lines are DEBUG: ours only (libraries' debug output is not the point).
    logging.getLogger("bugstream").setLevel(logging.DEBUG)

    def read() -> list[dict[str, Any]]:
        lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
        return [orjson.loads(line) for line in lines]  # every line is one JSON object

    return read


def find(lines: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == event]


async def test_connection_message_and_security_events_are_json_with_ids(
    factory: Factory, json_lines: Lines
) -> None:
    alice = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx, ws_abuse_threshold=1000) as live:
        client = await live.connect(alice)
        connection_id = client.welcome["connection_id"]
        await client.send({"type": "ping"})
        await client.next()
        await client.send({"type": "no.such.thing", "request_id": "q1"})
        await client.next()
        await client.close()
        refused = await live.connect("not-a-token", welcome=False)
        await refused.closed()
        await asyncio.sleep(0.2)
    lines = json_lines()
    for line in lines:
        assert {"timestamp", "level", "logger", "event"} <= line.keys()

    (connected,) = find(lines, "connected")
    assert connected["connection_id"] == connection_id
    assert connected["user_id"] == alice.id
    assert connected["remote"] == "127.0.0.1"

    (accepted,) = find(lines, "message")
    assert accepted["level"] == "debug"
    assert (accepted["type"], accepted["outcome"]) == ("ping", "accepted")
    assert accepted["size"] == len(b'{"type":"ping"}')
    assert accepted["connection_id"] == connection_id

    (refused_line,) = find(lines, "message refused")
    assert refused_line["outcome"] == "unknown_event_type"
    assert refused_line["request_id"] == "q1"
    assert (refused_line["connection_id"], refused_line["user_id"]) == (connection_id, alice.id)

    (disconnected,) = find(lines, "disconnected")
    assert disconnected["connection_id"] == connection_id
    assert disconnected["user_id"] == alice.id
    assert disconnected["reason"] == "client_closed"
    assert 0 <= disconnected["duration_s"] < 10

    (auth,) = find(lines, "authentication failed")
    assert auth["logger"] == "bugstream.security"
    assert auth["code"] == "invalid_token"
    strikes = find(lines, "security strike")
    assert strikes and strikes[0]["key"] == "ip:127.0.0.1"
    assert strikes[0]["kind"] == "invalid_token"


async def test_limit_violations_are_security_events_naming_the_connection(
    factory: Factory, json_lines: Lines
) -> None:
    alice = await factory.user(Role.DEVELOPER)
    settings = {"ws_rate_limit_capacity": 1, "ws_rate_limit_refill_per_second": 0.001}
    async with live_server(factory.ctx, **settings) as live:
        client = await live.connect(alice)
        await client.send({"type": "ping"})
        await client.next()
        await client.send({"type": "ping"})
        assert (await client.next())["payload"]["code"] == "rate_limited"
    strikes = find(json_lines(), "security strike")
    assert {s["key"] for s in strikes} == {f"user:{alice.id}", "ip:127.0.0.1"}
    for strike in strikes:
        assert strike["logger"] == "bugstream.security"
        assert strike["level"] == "warning"
        assert strike["kind"] == "rate_limited"
        assert strike["connection_id"] == client.welcome["connection_id"]
        assert strike["user_id"] == alice.id


async def test_performance_summary_reports_connections_rates_and_latency(
    factory: Factory, json_lines: Lines
) -> None:
    alice = await factory.user(Role.DEVELOPER)
    project = await factory.project(alice)
    async with live_server(factory.ctx, performance_summary_seconds=0.3) as live:
        client = await live.connect(alice)
        await factory.bug(project, alice)
        await client.expect_event("bug_report", "created")
        await asyncio.sleep(0.7)
    summaries = find(json_lines(), "performance summary")
    assert summaries
    busy = [s for s in summaries if s["latency_p50_ms"] is not None]
    assert busy, summaries
    line = busy[0]
    assert line["connections"] == 1
    assert line["messages_out_per_s"] > 0
    assert 0 < line["latency_p50_ms"] <= line["latency_p99_ms"] <= line["latency_max_ms"] < 2000
    assert line["relay_lag_events"] == 0
    assert line["frames_per_write"] >= 1  # the welcome and the event: one write each at least


async def test_development_logs_are_readable_lines(factory: Factory, restore_logging: None) -> None:
    buffer = capture("console")
    alice = await factory.user(Role.DEVELOPER)
    async with live_server(factory.ctx) as live:
        client = await live.connect(alice)
        await client.close()
        await asyncio.sleep(0.2)
    (line,) = [line for line in buffer.getvalue().splitlines() if " disconnected " in line]
    assert not line.startswith("{")
    assert f"user_id={alice.id}" in line
    assert "reason=client_closed" in line


def _fail_with_a_large_local() -> None:
    request_body = "x" * 200_000  # noqa: F841 (a frame's local, as a request's body would be)
    raise OverflowError("Python int too large to convert to SQLite INTEGER")


def test_an_error_in_json_logs_carries_its_traceback(json_lines: Lines) -> None:
    try:
        _fail_with_a_large_local()
    except OverflowError:
        logging.getLogger("bugstream.test").exception("unhandled error")
    [line] = find(json_lines(), "unhandled error")
    assert "Traceback (most recent call last)" in line["exception"]
    assert "_fail_with_a_large_local" in line["exception"]
    assert "OverflowError: Python int too large" in line["exception"]


def test_an_error_in_console_logs_is_a_plain_traceback_without_locals(
    restore_logging: None,
) -> None:
    """With `rich` installed (a dev dependency), structlog printed every frame's locals: one
    error in a request took 15 s of the event loop and 120,000 lines."""
    buffer = capture("console")
    try:
        _fail_with_a_large_local()
    except OverflowError:
        logging.getLogger("bugstream.test").exception("unhandled error")
    text = buffer.getvalue()
    assert "_fail_with_a_large_local" in text and "OverflowError" in text
    assert "x" * 1000 not in text
    assert len(text.splitlines()) < 20
