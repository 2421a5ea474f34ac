"""When the SDK falls back from WebSocket to SSE (client/transport.py): the rules, one
attempt's outcome at a time. The live fallback is tests/client/test_client_sse.py."""

from __future__ import annotations

import socket

import pytest

from bugstream.client.outcome import Outcome
from bugstream.client.transport import Dialer, DialOptions, Transport

OPTIONS = DialOptions(1.0, None, None, 1.0, None)


def dialer(mode: Transport = "auto", fallback_after: int = 2) -> Dialer:
    return Dialer(mode, fallback_after, OPTIONS)


def failed(exc: BaseException) -> Outcome:
    return Outcome(False, exception=exc)


def refused(status: int) -> Outcome:
    return Outcome(False, http_status=status)


def test_auto_starts_on_websocket_and_sse_never_tries_it() -> None:
    assert dialer().transport == "websocket"
    assert dialer("sse").transport == "sse"
    assert not dialer("sse").falls_back(failed(TimeoutError()))


def test_a_final_refusal_of_the_upgrade_falls_back_at_once() -> None:
    for status in (400, 403, 404, 405, 426):
        choice = dialer()
        assert choice.falls_back(refused(status)), status
        assert choice.transport == "sse"


def test_failures_that_reach_no_websocket_fall_back_after_fallback_after_in_a_row() -> None:
    choice = dialer(fallback_after=3)
    blocked = [failed(TimeoutError()), failed(ConnectionResetError()), refused(502)]
    assert [choice.falls_back(outcome) for outcome in blocked] == [False, False, True]
    # Dropped before the welcome (no close frame) counts too.
    choice = dialer()
    dropped = Outcome(False, close_code=1006)
    assert [choice.falls_back(dropped), choice.falls_back(dropped)] == [False, True]


def test_a_busy_or_absent_server_is_not_a_blocked_websocket() -> None:
    choice = dialer(fallback_after=1)
    for outcome in (
        failed(ConnectionRefusedError()),  # nothing listens: the stream is not there either
        failed(socket.gaierror()),
        refused(503),  # the server answered: busy or restarting
        Outcome(False, exception=TimeoutError(), dialed=False),  # the token provider
    ):
        assert not choice.falls_back(outcome), outcome
    assert choice.transport == "websocket"


def test_an_unblocked_attempt_breaks_the_run() -> None:
    choice = dialer()
    assert not choice.falls_back(failed(TimeoutError()))
    assert not choice.falls_back(refused(503))
    assert not choice.falls_back(failed(TimeoutError()))  # one in a row again
    assert choice.falls_back(failed(TimeoutError()))


@pytest.mark.parametrize(
    "worked",
    [Outcome(True), Outcome(False, close_code=4100), Outcome(False, close_code=1001)],
)
def test_once_a_websocket_got_through_it_never_falls_back(worked: Outcome) -> None:
    choice = dialer(fallback_after=1)
    assert not choice.falls_back(worked)
    assert choice.websocket_worked
    assert not choice.falls_back(refused(403))
    assert not choice.falls_back(failed(TimeoutError()))
    assert choice.transport == "websocket"


def test_websocket_mode_never_falls_back() -> None:
    choice = dialer("websocket", fallback_after=1)
    assert not choice.falls_back(refused(403))
    assert not choice.falls_back(failed(TimeoutError()))
    assert choice.transport == "websocket"


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="transport must be one of"):
        Dialer("polling", 2, OPTIONS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fallback_after"):
        dialer(fallback_after=0)


def test_the_error_after_both_refusals_names_both() -> None:
    choice = dialer()
    assert "WebSocket upgrade with HTTP 403" in str(choice.refused(403))
    choice.falls_back(refused(403))
    message = str(choice.refused(404))
    assert "upgrade was refused with HTTP 403" in message and "with HTTP 404" in message
    assert "event stream (/api/v1/events/stream) with HTTP 401" in str(dialer("sse").refused(401))
