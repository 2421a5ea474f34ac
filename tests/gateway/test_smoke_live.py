from bugstream.domain.enums import Role
from tests.support.factory import Factory
from tests.support.live import live_server


async def test_member_sees_bug_created_over_rest_and_non_member_does_not(
    factory: Factory,
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    outsider = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        member_ws = await live.connect(dev)
        outsider_ws = await live.connect(outsider)
        async with live.http(dev) as http:
            response = await http.post(
                "/api/v1/bugs", json={"project_id": project.id, "title": "Crash"}
            )
            assert response.status_code == 201
        event = await member_ws.expect_event("bug_report", "created")
        assert event["payload"]["title"] == "Crash"
        assert await outsider_ws.events() == []
