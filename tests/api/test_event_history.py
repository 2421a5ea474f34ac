"""`GET /api/v1/events`: the cursor's edges, the bound on `limit`, the window it reaches back
to (`resync_required` before it), a page that looks at many events the caller may not see,
and the token it needs."""

from __future__ import annotations

from bugstream.domain.enums import Role
from bugstream.store.outbox import read_events_after
from tests.support.factory import Factory
from tests.support.live import live_server

EVENTS = "/api/v1/events"


async def _all_ids(factory: Factory) -> list[int]:
    async with factory.ctx.db.read() as repos:
        return [e.event_id for e in await read_events_after(repos.conn, 0, 10_000)]


async def test_limit_one_pages_event_by_event_and_after_zero_starts_at_the_first(
    factory: Factory,
) -> None:
    admin = await factory.user(Role.ADMIN)
    project = await factory.project()
    for i in range(3):
        await factory.bug(project, admin, title=f"bug {i}")
    async with live_server(factory.ctx) as live, live.http(admin) as http:
        ids = await _all_ids(factory)
        after, seen = 0, []
        for _ in range(len(ids)):
            page = (await http.get(EVENTS, params={"after": after, "limit": 1})).json()
            assert len(page["items"]) == 1
            assert page["next_after"] == page["items"][0]["event_id"]
            seen.append(page["next_after"])
            after = page["next_after"]
        assert seen == ids  # an admin sees every event, from the very first
        assert page["has_more"] is False
        assert page["latest_event_id"] == ids[-1]


async def test_limit_above_the_maximum_is_422_and_the_default_is_bounded(factory: Factory) -> None:
    admin = await factory.user(Role.ADMIN)
    project = await factory.project()
    for i in range(4):
        await factory.bug(project, admin, title=f"bug {i}")
    async with live_server(factory.ctx, history_max_limit=3) as live, live.http(admin) as http:
        too_many = await http.get(EVENTS, params={"limit": 4})
        assert too_many.status_code == 422
        assert too_many.json()["payload"]["code"] == "validation_failed"
        assert (await http.get(EVENTS, params={"limit": 0})).status_code == 422
        assert (await http.get(EVENTS, params={"after": -1})).status_code == 422
        page = (await http.get(EVENTS)).json()  # no limit given: at most the maximum
        assert len(page["items"]) == 3 and page["has_more"] is True


async def test_after_the_latest_event_is_an_empty_page_that_keeps_the_cursor(
    factory: Factory,
) -> None:
    admin = await factory.user(Role.ADMIN)
    async with live_server(factory.ctx) as live, live.http(admin) as http:
        latest = (await _all_ids(factory))[-1]
        for after in (latest, latest + 1000):
            page = (await http.get(EVENTS, params={"after": after})).json()
            assert page == {
                "items": [],
                "next_after": after,
                "latest_event_id": latest,
                "has_more": False,
            }


async def test_after_older_than_the_window_is_409_resync_required(factory: Factory) -> None:
    admin = await factory.user(Role.ADMIN)
    project = await factory.project()
    async with live_server(factory.ctx, replay_window_events=3) as live, live.http(admin) as http:
        client = await live.connect(admin)
        for i in range(6):
            await factory.bug(project, admin, title=f"bug {i}")
        await client.events()  # every event relayed
        latest = (await _all_ids(factory))[-1]

        response = await http.get(EVENTS, params={"after": 0})
        assert response.status_code == 409
        body = response.json()
        assert body["type"] == "error"
        payload = body["payload"]
        assert payload["code"] == "resync_required"
        assert payload["last_event_id"] == 0
        assert payload["latest_event_id"] == latest
        assert payload["oldest_event_id"] == latest - 2  # the window keeps the last 3

        kept = await http.get(EVENTS, params={"after": payload["oldest_event_id"] - 1})
        assert [e["event_id"] for e in kept.json()["items"]] == [latest - 2, latest - 1, latest]


async def test_a_page_stops_after_looking_at_max_scanned_events_even_with_no_item(
    factory: Factory,
) -> None:
    admin = await factory.user(Role.ADMIN)
    viewer = await factory.user(Role.VIEWER)
    theirs = await factory.project(viewer)
    other = await factory.project()
    async with live_server(factory.ctx) as live, live.http(viewer) as http:
        client = await live.connect(admin)
        start = client.welcome["latest_event_id"]
        for i in range(6):
            await factory.bug(other, admin, title=f"not the viewer's {i}")
        mine = await factory.bug(theirs, admin, title="the viewer's")
        await client.events()
        live.gateway.history.max_scanned = 4

        first = (await http.get(EVENTS, params={"after": start, "limit": 10})).json()
        assert first["items"] == [] and first["has_more"] is True
        assert first["next_after"] == start + 4
        second = (await http.get(EVENTS, params={"after": first["next_after"]})).json()
        assert [e["payload"]["id"] for e in second["items"]] == [mine.id]
        assert second["has_more"] is False


async def test_without_a_valid_token_it_is_401(factory: Factory) -> None:
    async with live_server(factory.ctx) as live:
        async with live.http() as anonymous:
            response = await anonymous.get(EVENTS)
        assert response.status_code == 401
        assert response.json()["payload"]["code"] == "invalid_token"
        async with live.http() as forged:
            response = await forged.get(EVENTS, headers={"Authorization": "Bearer not-a-token"})
        assert response.status_code == 401
