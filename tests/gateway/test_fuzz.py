"""Property: whatever frame a client sends, the gateway answers it with exactly one documented
message (an `error` with a catalog code, or an `ack` / `pong`) and keeps the connection open.

All examples go to ONE live connection. pytest-asyncio cannot run `@given` on an async test,
so the async test starts the server and the client, and runs the (sync) Hypothesis test in a
worker thread; each example hands its frame to the test's event loop with
`run_coroutine_threadsafe` and waits for the answers.

Not fuzzed here: text frames with invalid UTF-8, which RFC 6455 requires closing with 1007
(test_errors.py), and `resume`, whose answer is a replay of events rather than an ack.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bugstream.domain.enums import BugStatus, Priority, Role
from bugstream.domain.errors import ErrorCode
from bugstream.domain.protocol import ClientMessage, Command
from bugstream.gateway.commands import COMMANDS
from tests.support.factory import Factory
from tests.support.live import Client, live_server

DOCUMENTED_CODES = {code.value for code in ErrorCode} - {ErrorCode.INTERNAL_ERROR.value}
KNOWN_TYPES = [c.value for c in Command] + [
    ClientMessage.PING.value,
    ClientMessage.AUTH.value,
    ClientMessage.SUBSCRIBE.value,
    ClientMessage.UNSUBSCRIBE.value,
]
FIELDS = [
    "id",
    "project_id",
    "bug_report_id",
    "assignee_id",
    "title",
    "description",
    "priority",
    "status",
    "content",
    "token",
    "projects",
    "bug_reports",
    "all",
]

# Integers at the edges that matter: 32/53/63/64-bit limits (ids are BIGINT in the store;
# orjson reads integers beyond 64 bits as floats).
edge_integers = st.sampled_from(
    [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64 - 1, 2**64, 10**30]
)
scalars = (
    st.none()
    | st.booleans()
    | edge_integers
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
request_ids = st.one_of(st.text(max_size=70), st.integers(), json_values)


def encode(value: Any, *, ascii_only: bool = True) -> str:
    # The standard library writes what orjson cannot (integers over 64 bits, NaN): the
    # server must cope with those too.
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def typed_messages(draw: st.DrawFn) -> str:
    """Objects with a random or known `type`, and random payloads and request ids."""
    message: dict[str, Any] = {
        "type": draw(st.sampled_from(KNOWN_TYPES) | st.text(max_size=40) | json_values)
    }
    if draw(st.booleans()):
        message["payload"] = draw(json_values)
    if draw(st.booleans()):
        message["request_id"] = draw(request_ids)
    return encode(message)


@st.composite
def wrong_typed_commands(draw: st.DrawFn) -> str:
    """Known commands with their fields (and others) holding values of any type."""
    values = json_values | edge_integers | st.lists(edge_integers, max_size=3)
    payload = draw(st.dictionaries(st.sampled_from(FIELDS), values, max_size=5))
    message = {
        "type": draw(st.sampled_from(KNOWN_TYPES)),
        "request_id": draw(st.text(min_size=1, max_size=20)),
        "payload": payload,
    }
    return encode(message)


plausible = st.one_of(
    st.integers(min_value=1, max_value=4),
    st.sampled_from([s.value for s in BugStatus] + [p.value for p in Priority]),
    st.text(min_size=1, max_size=30),
)


@st.composite
def command_messages(draw: st.DrawFn) -> str:
    """Each command with its own fields, holding plausible values, edge integers or any
    JSON: this reaches the services (and the database) with odd but well-formed input."""
    command = draw(st.sampled_from(list(COMMANDS)))
    payload: dict[str, Any] = {}
    for name in COMMANDS[command].payload.model_fields:
        if draw(st.integers(min_value=0, max_value=9)):  # usually present
            payload[name] = draw(plausible | edge_integers | json_values)
    message = {"type": command.value, "request_id": draw(st.integers()), "payload": payload}
    return encode(message)


@st.composite
def huge_values(draw: st.DrawFn) -> str:
    """Strings up to ~100 K characters (up to ~600 KB), inside a message or as the whole frame.

    Frames stay under the 1 MiB frame limit: a larger frame is not read at all and closes
    the connection with 1009 (test_limits.py); below it, over the 64 KiB message limit, the
    answer is message_too_large.
    """
    size = draw(st.integers(min_value=0, max_value=100_000))
    text = draw(st.sampled_from(["x", "é", "😀", '"', "\\", "\x00"])) * size
    shape = draw(st.sampled_from(["ping", "comment", "title", "type", "raw"]))
    if shape == "raw":
        return text
    if shape == "ping":
        message: dict[str, Any] = {"type": "ping", "payload": {"pad": text}}
    elif shape == "comment":
        message = {"type": "comment.create", "payload": {"bug_report_id": 1, "content": text}}
    elif shape == "title":
        message = {"type": "bug_report.create", "payload": {"project_id": 1, "title": text}}
    else:
        message = {"type": text}
    return encode(message, ascii_only=False)


@st.composite
def deep_nesting(draw: st.DrawFn) -> str:
    """Nesting up to 2500 levels: beyond orjson's limit (1024) it is not valid JSON."""
    depth = draw(st.integers(min_value=1, max_value=2500))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    nested = opener * depth + "1" * (opener != "[") + closer * depth
    where = draw(st.sampled_from(["whole", "payload", "type", "request_id"]))
    if where == "whole":
        return nested
    if where == "payload":
        return '{"type": "ping", "payload": {"deep": ' + nested + "}}"
    if where == "type":
        return '{"type": ' + nested + "}"
    return '{"type": "ping", "request_id": ' + nested + "}"


frames: st.SearchStrategy[str | bytes] = st.one_of(
    json_values.map(encode),
    typed_messages(),
    wrong_typed_commands(),
    command_messages(),
    command_messages(),
    huge_values(),
    deep_nesting(),
    st.text(max_size=200),
    st.binary(max_size=300),
    typed_messages().map(str.encode),  # valid messages in binary frames
)


def sent_request_id(frame: str | bytes) -> Any:
    """The request id a well-formed message carries (what an answer may echo)."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    return message.get("request_id") if isinstance(message, dict) else None


async def exchange(client: Client, frame: str | bytes, marker: str) -> list[dict[str, Any]]:
    """Send `frame`, then a marker that is answered after anything `frame` caused (it goes
    through the same per-connection work queue); every answer that came before the marker's."""
    await client.ws.send(frame)
    await client.send({"type": "subscribe", "request_id": marker, "payload": {"all": True}})
    answers: list[dict[str, Any]] = []
    while True:
        message = await client.next(timeout=10)
        if "event_id" in message:
            continue  # an event a valid command caused (a fuzzed bug creation, say)
        if message["type"] == "ack" and message["payload"].get("request_id") == marker:
            return answers
        answers.append(message)


async def test_arbitrary_frames_get_one_documented_answer_and_never_close(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    await factory.bug(project, dev)
    async with live_server(
        factory.ctx,
        ws_rate_limit_capacity=1_000_000,
        ws_abuse_threshold=1_000_000,
        ws_max_connections_per_user=1,
    ) as live:
        client = await live.connect(dev)
        loop = asyncio.get_running_loop()
        markers = itertools.count()
        examples = 0

        @settings(
            max_examples=200,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(frame=frames)
        def property_holds(frame: str | bytes) -> None:
            nonlocal examples
            examples += 1
            marker = f"marker-{next(markers)}"
            future = asyncio.run_coroutine_threadsafe(exchange(client, frame, marker), loop)
            answers = future.result(timeout=30)
            assert len(answers) == 1, (frame[:200], answers)
            (answer,) = answers
            assert answer["type"] in ("error", "ack", "pong"), answer
            assert set(answer) == {"type", "payload"}, answer
            payload = answer["payload"]
            if answer["type"] == "error":
                assert payload["code"] in DOCUMENTED_CODES, (frame[:200], answer)
                assert isinstance(payload["message"], str) and payload["message"]
            if "request_id" in payload and payload["request_id"] is not None:
                assert payload["request_id"] == sent_request_id(frame), (frame[:200], answer)
            assert client.ws.close_code is None, (frame[:200], client.ws.close_reason)

        await asyncio.to_thread(property_holds)
        assert examples >= 100

        # Still the same connection, still usable.
        await client.send({"type": "ping"})
        assert (await client.expect(lambda m: "event_id" not in m))["type"] == "pong"
        assert client.ws.close_code is None
        assert live.gateway.hub.connection_count == 1
