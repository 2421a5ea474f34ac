"""Sign-in is throttled per username and per address (issue 13.7): 12 wrong passwords in a
row all got 401 before; now the 6th and later get 429 with Retry-After, the right password
included, until the window has passed. Over real sockets, with a short window."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bugstream.api.login_throttle import LoginThrottle
from bugstream.domain.enums import Role
from tests.support.factory import PASSWORD, Factory
from tests.support.live import live_server

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
WINDOW = 1.0


async def sign_in(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post("/api/v1/auth/token", json={"username": username, "password": password})


@SQLITE
async def test_wrong_passwords_for_one_user_are_throttled_then_let_through(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    async with (
        live_server(factory.ctx, login_window_seconds=WINDOW) as live,
        httpx.AsyncClient(base_url=live.http_url) as http,
    ):
        statuses = [(await sign_in(http, dev.username, "wrong")).status_code for _ in range(12)]
        assert statuses == [401] * 5 + [429] * 7
        blocked = await sign_in(http, dev.username.upper(), PASSWORD)  # right, case-folded
        assert blocked.status_code == 429
        assert blocked.json()["payload"]["code"] == "rate_limited"
        assert 1 <= int(blocked.headers["retry-after"]) <= WINDOW + 1
        assert blocked.json()["payload"]["retry_after"] == int(blocked.headers["retry-after"])
        # Another user from the same address is not blocked by this one's failures.
        other = await factory.user(Role.DEVELOPER)
        assert (await sign_in(http, other.username, PASSWORD)).status_code == 200
        await asyncio.sleep(WINDOW + 0.1)
        assert (await sign_in(http, dev.username, PASSWORD)).status_code == 200


@SQLITE
async def test_many_usernames_from_one_address_are_throttled(factory: Factory) -> None:
    async with (
        live_server(
            factory.ctx, login_window_seconds=WINDOW, login_max_failures_per_address=8
        ) as live,
        httpx.AsyncClient(base_url=live.http_url) as http,
    ):
        statuses = [(await sign_in(http, f"guess{n}", "pw")).status_code for n in range(10)]
    assert statuses == [401] * 8 + [429] * 2


def test_a_success_clears_the_users_failures_and_keys_are_bounded() -> None:
    now = [0.0]
    throttle = LoginThrottle(
        max_failures_per_user=3, max_failures_per_address=100, window=60, clock=lambda: now[0],
        max_keys=4,
    )  # fmt: skip
    for _ in range(2):
        throttle.failed("ada", "10.0.0.1")
    throttle.succeeded("ada")
    throttle.failed("ada", "10.0.0.1")
    assert throttle.retry_after("ada", "10.0.0.1") is None  # 1 failure since the success
    for n in range(10):
        throttle.failed(f"u{n}", f"10.0.1.{n}")
    assert len(throttle._failures) == 4
    for _ in range(3):
        throttle.failed("bob", "10.0.0.2")
    now[0] = 30.0
    assert throttle.retry_after("bob", "10.0.0.9") == 30
    now[0] = 60.0
    assert throttle.retry_after("bob", "10.0.0.9") is None
