"""AccessLoader: one load per user at a time, a bounded number at once, errors to every waiter,
and a waiter that leaves does not cancel the others' load."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bugstream.domain.enums import Role, UserStatus
from bugstream.domain.errors import AuthError
from bugstream.domain.models import User
from bugstream.gateway.access_loader import AccessLoader
from bugstream.services.access_snapshot import AccessSnapshot

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def snapshot(user_id: int) -> AccessSnapshot:
    user = User(
        id=user_id,
        username=f"u{user_id}",
        email=f"u{user_id}@example.com",
        role=Role.DEVELOPER,
        status=UserStatus.ACTIVE,
        created_at=NOW,
        updated_at=NOW,
    )
    return AccessSnapshot(user=user, project_ids=frozenset({1}), as_of=7)


class SlowLoads:
    """Loads that finish when released; records how many ran at once."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.running = 0
        self.most = 0
        self.release = asyncio.Event()
        self.fail: set[int] = set()

    async def __call__(self, user_id: int) -> AccessSnapshot:
        self.calls.append(user_id)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
            if user_id in self.fail:
                raise AuthError("the token's user no longer exists")
            return snapshot(user_id)
        finally:
            self.running -= 1


async def test_concurrent_handshakes_of_one_user_share_one_load() -> None:
    loads = SlowLoads()
    loader = AccessLoader(loads, concurrency=4)
    waiters = [asyncio.create_task(loader(5)) for _ in range(10)]
    await asyncio.sleep(0.01)
    loads.release.set()
    results = await asyncio.gather(*waiters)
    assert loads.calls == [5]
    assert {r.user.id for r in results} == {5}
    assert loader.in_flight == 0
    # Once done, the next handshake loads afresh (access may have changed since).
    await loader(5)
    assert loads.calls == [5, 5]


async def test_at_most_concurrency_loads_run_at_once() -> None:
    loads = SlowLoads()
    loader = AccessLoader(loads, concurrency=3)
    waiters = [asyncio.create_task(loader(user_id)) for user_id in range(1, 21)]
    await asyncio.sleep(0.01)
    assert loads.running == 3
    loads.release.set()
    results = await asyncio.gather(*waiters)
    assert [r.user.id for r in results] == list(range(1, 21))
    assert loads.most == 3
    assert sorted(loads.calls) == list(range(1, 21))


async def test_an_error_reaches_every_waiter() -> None:
    loads = SlowLoads()
    loads.fail.add(9)
    loader = AccessLoader(loads, concurrency=2)
    waiters = [asyncio.create_task(loader(9)) for _ in range(3)]
    await asyncio.sleep(0.01)
    loads.release.set()
    for waiter in waiters:
        with pytest.raises(AuthError):
            await waiter
    assert loads.calls == [9]


async def test_a_waiter_that_leaves_does_not_cancel_the_shared_load() -> None:
    loads = SlowLoads()
    loader = AccessLoader(loads, concurrency=2)
    leaving = asyncio.create_task(loader(3))
    staying = asyncio.create_task(loader(3))
    await asyncio.sleep(0.01)
    leaving.cancel()
    loads.release.set()
    assert (await staying).user.id == 3
    assert loads.calls == [3]
