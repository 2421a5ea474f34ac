"""Subscription edge rules: an empty subscribe is refused; news of one's own access always
arrives, however narrow the subscription."""

from __future__ import annotations

from bugstream.domain.enums import Role
from bugstream.domain.models import MembershipAdd
from bugstream.services import projects
from tests.support.factory import Factory
from tests.support.live import live_server


async def test_an_empty_subscribe_is_refused_and_changes_nothing(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    await factory.project(dev)
    async with live_server(factory.ctx) as live:
        client = await live.connect(dev)
        empty: list[dict[str, object]] = [{}, {"projects": [], "bug_reports": []}]
        for payload in empty:
            answer = await client.command("subscribe", payload, request_id="s")
            assert answer["type"] == "error"
            assert answer["payload"]["code"] == "validation_failed"
        status = await client.command("subscribe", {"all": True}, request_id="all")
        assert status["payload"]["result"] == {"all": True}


async def test_a_narrowed_client_still_learns_it_was_added_to_another_project(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    watched = await factory.project(dev)
    other = await factory.project()
    async with live_server(factory.ctx) as live:
        client = await live.connect(dev)
        ack = await client.command("subscribe", {"projects": [watched.id]}, request_id="s")
        assert ack["type"] == "ack"
        admin = await factory.admin()
        await projects.add_member(factory.ctx, admin, other.id, MembershipAdd(user_id=dev.id))
        added = await client.expect_event("membership", "added")
        assert added["payload"] == {**added["payload"], "project_id": other.id, "user_id": dev.id}
