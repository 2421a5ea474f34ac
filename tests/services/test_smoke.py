from bugstream.domain.enums import Role
from bugstream.store.outbox import read_events_after
from tests.support.factory import Factory


async def test_bug_lifecycle_writes_events(factory: Factory) -> None:
    dev = await factory.user(Role.DEVELOPER)
    rep = await factory.user(Role.REPORTER)
    project = await factory.project(dev, rep)
    bug = await factory.bug(project, rep, assignee=dev)
    await factory.comment(bug, dev)
    async with factory.ctx.db.read() as repos:
        events = await read_events_after(repos.conn, 0)
    kinds = [(e.type.value, e.event.value) for e in events]
    assert ("bug_report", "assigned") in kinds
    assert ("notification", "comment_added") in kinds
    assert [e.event_id for e in events] == sorted(e.event_id for e in events)
