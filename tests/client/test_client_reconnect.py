"""Reconnect rules with the backoff clock replaced (no real waiting): the delays, giving up,
resetting after a success, close codes that stop at once, and the one retry with a new token.
"""

from __future__ import annotations

import asyncio
import random
import socket
from urllib.parse import urlsplit

import pytest

from bugstream.client import (
    Backoff,
    Client,
    ConnectionRejected,
    ConnectionState,
    Phase,
    ReconnectFailed,
    Skipped,
    TokenExpired,
)
from bugstream.testing.scripted import (
    Close,
    Drop,
    FakeSleep,
    Refuse,
    Serve,
    Step,
    event,
    scripted_server,
)

SPEC_DELAYS = [2.0, 4.0, 8.0, 16.0, 32.0]


def always_one() -> float:
    return 1.0


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---- the delays -----------------------------------------------------------------------------


def test_default_backoff_doubles_from_two_seconds_over_five_attempts() -> None:
    assert list(Backoff().delays(always_one)) == SPEC_DELAYS


def test_full_jitter_stays_within_zero_and_the_bound() -> None:
    rng = random.Random(20260105)
    backoff = Backoff()
    seen: list[float] = []
    for _ in range(200):
        for attempt, bound in enumerate(SPEC_DELAYS, start=1):
            delay = backoff.delay(attempt, rng.random)
            assert 0.0 <= delay <= bound
            seen.append(delay / bound)
    # Spread over the whole window, not bunched at the bound.
    assert min(seen) < 0.1 and max(seen) > 0.9
    assert backoff.delay(3, lambda: 0.0) == 0.0
    assert backoff.delay(3, lambda: 0.5) == 4.0


def test_backoff_is_configurable() -> None:
    custom = Backoff(initial=0.5, factor=3.0, max_attempts=4, max_delay=5.0)
    assert list(custom.delays(always_one)) == [0.5, 1.5, 4.5, 5.0]
    assert list(Backoff(jitter=False).delays(lambda: 0.0)) == SPEC_DELAYS
    with pytest.raises(ValueError):
        Backoff(factor=0.5)


# ---- the client's reconnect loop ------------------------------------------------------------


async def test_server_down_gives_up_after_five_attempts_with_doubling_delays() -> None:
    sleep = FakeSleep()
    states: list[ConnectionState] = []
    client = Client(f"ws://127.0.0.1:{closed_port()}/ws", token="t", sleep=sleep, random=always_one)
    client.on_state(states.append)
    with pytest.raises(ReconnectFailed) as failed:
        await client.connect()
    assert sleep.delays == SPEC_DELAYS
    assert failed.value.attempts == 5
    assert isinstance(failed.value.error, OSError)
    assert "gave up after 5 reconnect attempts" in str(failed.value)
    waiting = [(s.attempt, s.next_delay) for s in states if s.next_delay is not None]
    assert waiting == list(zip(range(1, 6), SPEC_DELAYS, strict=True))
    assert all(s.max_attempts == 5 for s in states)
    assert states[-1].phase is Phase.CLOSED and states[-1].error is failed.value
    assert str(states[1]) == "reconnecting, attempt 1 of 5"


async def test_jittered_delays_stay_within_their_bounds() -> None:
    sleep = FakeSleep()
    rng = random.Random(7)
    client = Client(f"ws://127.0.0.1:{closed_port()}/ws", token="t", sleep=sleep, random=rng.random)
    with pytest.raises(ReconnectFailed):
        await client.connect()
    assert len(sleep.delays) == 5
    assert all(0 <= d <= b for d, b in zip(sleep.delays, SPEC_DELAYS, strict=True))
    assert sleep.delays != SPEC_DELAYS


async def test_a_welcome_resets_the_attempt_count_and_reconnects_resume() -> None:
    script: list[Step] = [
        Close(1001, welcome=True, events=[event(41), event(42)], latest_event_id=40),
        Refuse(503),
        Refuse(503),
        Close(4100, welcome=True, latest_event_id=42),
    ]
    sleep = FakeSleep()
    async with scripted_server(script) as server:
        client = Client(server.url, token="t", sleep=sleep, random=always_one)
        await client.connect()
        received = []
        with pytest.raises(ReconnectFailed) as failed:
            async for item in client.events():
                received.append(item.event_id)
    # 2, 4, 8 before the second welcome; then the count starts again.
    assert sleep.delays == [2.0, 4.0, 8.0, *SPEC_DELAYS]
    assert failed.value.attempts == 5
    assert received == [41, 42]
    # The first connection starts fresh; every reconnect resumes after event 42.
    assert [a.last_event_id for a in server.attempts] == [None] + [42] * 8


async def test_events_already_seen_are_dropped_on_resume() -> None:
    script: list[Step] = [
        Close(1001, welcome=True, events=[event(5), event(6)], latest_event_id=4),
        # A replay that overlaps what was delivered, and an event out of order.
        Serve(events=[event(6), event(7), event(5), event(8)], latest_event_id=8),
    ]
    sleep = FakeSleep()
    async with (
        scripted_server(script) as server,
        Client(server.url, token="t", sleep=sleep, random=always_one) as client,
    ):
        ids = []
        async for item in client.events():
            ids.append(item.event_id)
            if item.event_id == 8:
                break
    assert ids == [5, 6, 7, 8]
    assert client.state.phase is Phase.CLOSED


@pytest.mark.parametrize("code", [1001, 1006, 1011, 4100, 4101, 4102, 4103])
async def test_codes_of_the_reconnect_range_reconnect_with_backoff(code: int) -> None:
    sleep = FakeSleep()
    first: Step = Drop() if code == 1006 else Close(code, welcome=True)
    script: list[Step] = [first, Serve()]
    async with (
        scripted_server(script) as server,
        Client(server.url, token="t", sleep=sleep, random=always_one) as client,
    ):
        await wait_for_connection(client, "conn2")
    assert sleep.delays == [2.0]
    assert client.state.phase is Phase.CLOSED


@pytest.mark.parametrize(
    ("code", "error_code"),
    [(4001, "invalid_token"), (4003, "forbidden"), (4004, "blocked"), (1008, None)],
)
async def test_a_terminal_close_code_stops_at_once(code: int, error_code: str | None) -> None:
    sleep = FakeSleep()
    async with scripted_server([Close(code, error_code=error_code)]) as server:
        client = Client(server.url, token="t", sleep=sleep, random=always_one)
        with pytest.raises(ConnectionRejected) as rejected:
            await client.connect()
    assert sleep.delays == []
    assert len(server.attempts) == 1
    assert rejected.value.close_code == code
    if error_code:
        assert rejected.value.error is not None
        assert rejected.value.error["code"] == error_code
        assert f"scripted {error_code}" in str(rejected.value)
    assert "not reconnecting" in str(rejected.value)


async def test_a_terminal_close_while_connected_ends_the_event_stream() -> None:
    sleep = FakeSleep()
    script: list[Step] = [Close(4003, welcome=True, events=[event(1)], error_code="forbidden")]
    async with (
        scripted_server(script) as server,
        Client(server.url, token="t", sleep=sleep) as client,
    ):
        received = []
        with pytest.raises(ConnectionRejected) as rejected:
            async for item in client.events():
                received.append(item.event_id)
    assert received == [1]
    assert rejected.value.close_code == 4003
    assert sleep.delays == [] and len(server.attempts) == 1


async def test_an_expired_token_without_a_provider_is_a_clear_error() -> None:
    async with scripted_server([Close(4002, error_code="token_expired")]) as server:
        client = Client(server.url, token="old", sleep=FakeSleep())
        with pytest.raises(TokenExpired, match="token_provider") as expired:
            await client.connect()
    assert expired.value.close_code == 4002
    assert len(server.attempts) == 1


async def test_a_new_token_from_the_provider_gets_one_immediate_retry() -> None:
    tokens = iter(["t1", "t2"])
    sleep = FakeSleep()
    script: list[Step] = [Close(4001, error_code="invalid_token"), Serve()]
    async with (
        scripted_server(script) as server,
        Client(server.url, token_provider=lambda: next(tokens), sleep=sleep) as client,
    ):
        assert client.connection_id == "conn2"
    assert [a.token for a in server.attempts] == ["t1", "t2"]
    assert sleep.delays == []


async def test_the_provider_is_asked_once_per_rejection() -> None:
    counter = iter(range(100))

    async def provider() -> str:  # an async provider
        return f"token{next(counter)}"

    script: list[Step] = [Close(4001), Close(4001), Serve()]
    async with scripted_server(script) as server:
        client = Client(server.url, token_provider=provider, sleep=FakeSleep())
        with pytest.raises(ConnectionRejected) as rejected:
            await client.connect()
    # token0 rejected, token1 (the one retry) rejected as well: stop.
    assert [a.token for a in server.attempts] == ["token0", "token1"]
    assert rejected.value.close_code == 4001


async def test_the_provider_returning_the_same_token_stops() -> None:
    script: list[Step] = [Close(4002, error_code="token_expired"), Serve()]
    async with scripted_server(script) as server:
        client = Client(server.url, token_provider=lambda: "same", sleep=FakeSleep())
        with pytest.raises(TokenExpired, match="no newer token"):
            await client.connect()
    assert len(server.attempts) == 1


async def test_a_failing_provider_stops_after_a_rejection() -> None:
    calls = 0

    def provider() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("identity provider down")
        return "first"

    async with scripted_server([Close(4002)]) as server:
        client = Client(server.url, token_provider=provider, sleep=FakeSleep())
        with pytest.raises(TokenExpired):
            await client.connect()
    assert calls == 2 and len(server.attempts) == 1


async def test_token_expiry_while_connected_reconnects_with_a_new_token_and_resumes() -> None:
    tokens = iter(["t1", "t2"])
    sleep = FakeSleep()
    script: list[Step] = [
        Close(4002, welcome=True, events=[event(3)], latest_event_id=2),
        Serve(events=[event(4)], latest_event_id=4),
    ]
    async with (
        scripted_server(script) as server,
        Client(server.url, token_provider=lambda: next(tokens), sleep=sleep) as client,
    ):
        ids = []
        async for item in client.events():
            ids.append(item.event_id)
            if item.event_id == 4:
                break
    assert ids == [3, 4]
    assert [(a.token, a.last_event_id) for a in server.attempts] == [("t1", None), ("t2", 3)]
    assert sleep.delays == []


async def test_http_refusals_other_than_unavailable_are_final() -> None:
    async with scripted_server([Refuse(403)]) as server:
        client = Client(server.url, token="t", sleep=FakeSleep(), transport="websocket")
        with pytest.raises(ConnectionRejected) as rejected:
            await client.connect()
    assert rejected.value.http_status == 403
    assert "refused the WebSocket upgrade with HTTP 403" in str(rejected.value)
    assert len(server.attempts) == 1
    assert server.other_requests == []


async def test_a_refused_upgrade_tries_the_sse_fallback_once_before_giving_up() -> None:
    # "auto": a 403 to the upgrade is what a proxy that forbids WebSockets answers. This
    # server has no fallback either (404), so that ends it, naming both refusals.
    sleep = FakeSleep()
    async with scripted_server([Refuse(403)]) as server:
        client = Client(server.url, token="t", sleep=sleep)
        with pytest.raises(ConnectionRejected) as rejected:
            await client.connect()
    assert rejected.value.http_status == 404
    assert "upgrade was refused with HTTP 403" in str(rejected.value)
    assert "SSE fallback (/api/v1/events/stream) with HTTP 404" in str(rejected.value)
    assert len(server.attempts) == 1
    assert [urlsplit(path).path for path in server.other_requests] == ["/api/v1/events/stream"]
    assert sleep.delays == []  # at once: the refusal was not a failure to wait out
    assert client.transport == "sse"


async def test_closing_the_client_while_waiting_to_reconnect_stops_cleanly() -> None:
    sleep = FakeSleep()
    sleep.gate.clear()
    async with scripted_server([Close(1001, welcome=True)]) as server:
        client = Client(server.url, token="t", sleep=sleep)
        await client.connect()
        await sleep.sleeping.wait()
        waiting = client.state
        assert waiting.phase is Phase.RECONNECTING and waiting.next_delay is not None
        await client.close()
        closed = client.state
        assert closed.phase is Phase.CLOSED and closed.error is None
        assert [e async for e in client.events()] == []


async def wait_for_connection(client: Client, connection_id: str) -> None:
    for _ in range(500):
        if client.state.phase is Phase.CONNECTED and client.connection_id == connection_id:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not connected as {connection_id}: {client.state}")


async def test_skipped_notices_reach_on_skipped_in_their_place() -> None:
    notice = {
        "type": "skipped",
        "payload": {"event_ids": [2, 3], "reason": "superseded by a newer state"},
    }
    script: list[Step] = [Serve(events=[event(1), notice, event(4)], latest_event_id=0)]
    seen: list[str] = []

    def on_skipped(skipped: Skipped) -> None:
        seen.append(f"skipped {list(skipped.event_ids)}: {skipped.reason}")

    async with (
        scripted_server(script) as server,
        Client(server.url, token="t", on_skipped=on_skipped) as client,
    ):
        async for item in client.events():
            seen.append(f"event {item.event_id}")
            if item.event_id == 4:
                break
    assert seen == ["event 1", "skipped [2, 3]: superseded by a newer state", "event 4"]


async def test_processed_event_id_is_what_the_application_finished_with() -> None:
    """`last_event_id` counts events received, some still queued; persisting it after a
    crash skipped them (issue 11.7). `processed_event_id` moves only when the application
    asks for the next event."""
    script: list[Step] = [Serve(events=[event(5), event(6), event(7)], latest_event_id=4)]
    async with (
        scripted_server(script) as server,
        Client(server.url, token="t", sleep=FakeSleep(), random=always_one) as client,
    ):
        seen: list[int] = []
        with pytest.raises(RuntimeError, match="crashed on 6"):
            async for item in client.events():
                assert client.processed_event_id == (seen[-1] if seen else 4)
                if item.event_id == 6:
                    await asyncio.sleep(0.1)  # 7 arrives meanwhile: received, queued
                    assert client.last_event_id == 7
                    raise RuntimeError("crashed on 6")
                seen.append(item.event_id)
        # 6 was not finished: a later run resuming from here gets 6 and 7 again.
        assert client.processed_event_id == 5
        assert client.last_event_id == 7


# ---- retrying forever (issue 13.4) ---------------------------------------------------------


def test_forever_caps_each_wait_and_never_ends() -> None:
    forever = Backoff.forever()
    assert forever.max_attempts is None
    waits = [w for _, w in zip(range(12), forever.delays(always_one), strict=False)]
    assert waits == [2.0, 4.0, 8.0, 16.0] + [30.0] * 8
    with pytest.raises(ValueError, match="finite max_delay"):
        Backoff(max_attempts=None, max_delay=float("inf"))


async def test_retrying_forever_outlasts_the_default_five_attempts() -> None:
    sleep = FakeSleep()
    states: list[ConnectionState] = []
    script: list[Step] = [*[Refuse(503) for _ in range(9)], Serve()]
    async with scripted_server(script) as server:
        client = Client(
            server.url, token="t", sleep=sleep, random=always_one, backoff=Backoff.forever()
        )
        client.on_state(states.append)
        await client.connect()  # the 10th attempt is welcomed
        await client.close()
    assert sleep.delays == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 30.0]
    assert any(str(s) == "reconnecting, attempt 9 in 30.0 s" for s in states)
