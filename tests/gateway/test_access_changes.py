"""Access changes take effect on live connections at once, and subscriptions narrow a stream.

- A removed member receives `membership.removed` and then nothing more of the project; an
  added member receives `membership.added` and from then on the project's events.
- A promotion to admin widens a live connection to every project (and user events); a
  demotion narrows it back.
- A suspended, deactivated or deleted user's connections get `forbidden` and close 4003; the
  same token is then refused (4001 `invalid_token`).
- `subscribe` / `unsubscribe` narrow what one connection receives; personal events
  (notifications, the user's own account) always arrive; `{"all": true}` restores everything;
  an invisible project or bug report is `not_found` and leaves the subscription as it was.

Every stream is compared with the exact list of events expected, which also checks that
per-client order is commit order, with no duplicates.
"""

from __future__ import annotations

import itertools
from typing import Any

from bugstream.domain.enums import BugStatus, Role
from bugstream.domain.models import (
    BugAssign,
    BugCreate,
    BugStatusChange,
    BugUpdate,
    CommentCreate,
    Project,
    User,
    UserUpdate,
)
from bugstream.services import bugs, comments, users
from bugstream.services.context import Actor
from tests.gateway.test_delivery import (
    Message,
    Stream,
    Tap,
    Visibility,
    assert_commit_order,
    pump_all,
)
from tests.support.events import last_event_id
from tests.support.factory import Factory
from tests.support.live import LiveServer, live_server

Brief = tuple[str, str, int]
_seq = itertools.count(1)


def brief(message: Message) -> Brief:
    """`(type, event, subject)`: the bug that a bug, comment or notification event is about,
    the member a membership event is about, else the entity's own id."""
    kind, payload = message["type"], message["payload"]
    if kind in ("comment", "notification"):
        subject: int = payload["bug_report_id"]
    elif kind == "membership":
        subject = payload["user_id"]
    else:
        subject = payload["id"]
    return kind, message["event"], subject


def briefs(tap: Tap, after: int = 0) -> list[Brief]:
    """What the tap received (after event `after`), in arrival order, which must be commit
    order without duplicates."""
    assert_commit_order(tap)
    return [brief(m) for m in tap.events if m["event_id"] > after]


async def new_bug(factory: Factory, actor: User, project: Project, title: str = "bug") -> int:
    data = BugCreate(project_id=project.id, title=title)
    return (await bugs.create_bug(factory.ctx, Factory.actor(actor), data)).value.id


async def fence(factory: Factory, project: Project) -> tuple[int, Brief]:
    """File a bug in `project`, which every connected user of the test belongs to: once a
    client has received it, it has received everything committed before it. Its event id,
    and its brief."""
    data = BugCreate(project_id=project.id, title="fence")
    result = await bugs.create_bug(factory.ctx, await factory.admin(), data)
    return result.events[-1].event_id, ("bug_report", "created", result.value.id)


async def connect(live: LiveServer, name: str, user: User) -> Tap:
    return Tap(name, user, await live.connect(user))


async def test_a_removed_member_stops_receiving_the_project_at_once(factory: Factory) -> None:
    manager = await factory.user(Role.MANAGER)
    leaver = await factory.user(Role.DEVELOPER)
    stayer = await factory.user(Role.DEVELOPER)
    admin = await factory.user(Role.ADMIN)
    project = await factory.project(manager, leaver, stayer)
    common = await factory.project(leaver, stayer)
    async with live_server(factory.ctx) as live:
        leaver_taps = [await connect(live, f"leaver-{n}", leaver) for n in (1, 2)]
        stayer_tap = await connect(live, "stayer", stayer)
        admin_tap = await connect(live, "admin", admin)
        async with live.http(manager) as http:
            response = await http.delete(f"/api/v1/projects/{project.id}/members/{leaver.id}")
            assert response.status_code == 204
        # Straight after the removal commits, with no pause for delivery.
        bug_id = await new_bug(factory, manager, project)
        await comments.create_comment(
            factory.ctx, Factory.actor(manager), bug_id, CommentCreate(content="on it")
        )
        last, fenced = await fence(factory, common)
        await pump_all([*leaver_taps, stayer_tap, admin_tap], last)
        # The leaver's connections stay open, for what they may still see.
        assert all(tap.close is None for tap in leaver_taps)

    removed = ("membership", "removed", leaver.id)
    for tap in leaver_taps:
        assert briefs(tap) == [removed, fenced], tap.name
    rest = [("bug_report", "created", bug_id), ("comment", "created", bug_id)]
    assert briefs(stayer_tap) == [removed, *rest, fenced]
    assert briefs(admin_tap) == [removed, *rest, fenced]


async def test_an_added_member_starts_receiving_the_project_at_once(factory: Factory) -> None:
    manager = await factory.user(Role.MANAGER)
    joiner = await factory.user(Role.DEVELOPER)
    project = await factory.project(manager)
    common = await factory.project(manager, joiner)
    async with live_server(factory.ctx) as live:
        tap = await connect(live, "joiner", joiner)
        before = await new_bug(factory, manager, project, "before joining")
        async with live.http(manager) as http:
            response = await http.post(
                f"/api/v1/projects/{project.id}/members", json={"user_id": joiner.id}
            )
            assert response.status_code == 201
        after = await new_bug(factory, manager, project, "after joining")
        # The new member can act in the project over the same connection, and sees that too.
        ack = await tap.ack("comment.create", {"bug_report_id": before, "content": "I can help"})
        assert ack["bug_report_id"] == before
        last, fenced = await fence(factory, common)
        await tap.pump_until(last)

    assert briefs(tap) == [
        ("membership", "added", joiner.id),
        ("bug_report", "created", after),
        ("comment", "created", before),
        # (the manager, who reported `before`, is notified of the comment: not the joiner)
        fenced,
    ]


async def test_promotion_to_admin_widens_a_live_connection_and_demotion_narrows_it(
    factory: Factory,
) -> None:
    manager = await factory.user(Role.MANAGER)
    climber = await factory.user(Role.DEVELOPER)
    other = await factory.user(Role.REPORTER)
    admin = await factory.user(Role.ADMIN)
    project = await factory.project(manager)
    common = await factory.project(climber)
    admin_actor = Factory.actor(admin)

    async def touch(user: User) -> None:
        data = UserUpdate(email=f"{user.username}.{next(_seq)}@example.com")
        await users.update_user(factory.ctx, admin_actor, user.id, data)

    async with live_server(factory.ctx) as live, live.http(admin) as http:
        tap = await connect(live, "climber", climber)
        await new_bug(factory, manager, project)  # not for a developer outside the project
        await touch(other)  # nor another user's account

        response = await http.patch(f"/api/v1/users/{climber.id}", json={"role": "admin"})
        assert response.status_code == 200
        bug_as_admin = await new_bug(factory, manager, project)
        await touch(other)

        response = await http.patch(f"/api/v1/users/{climber.id}", json={"role": "developer"})
        assert response.status_code == 200
        await new_bug(factory, manager, project)
        await touch(other)

        last, fenced = await fence(factory, common)
        await tap.pump_until(last)

    assert briefs(tap) == [
        ("user", "updated", climber.id),
        ("bug_report", "created", bug_as_admin),
        ("user", "updated", other.id),
        ("user", "updated", climber.id),
        fenced,
    ]
    mine = [m["payload"] for m in tap.events if brief(m)[::2] == ("user", climber.id)]
    assert [p["role"] for p in mine] == ["admin", "developer"]


async def test_suspended_deactivated_and_deleted_users_are_disconnected_for_good(
    factory: Factory,
) -> None:
    admin = await factory.user(Role.ADMIN)
    bystander = await factory.user(Role.DEVELOPER)
    victims = {how: await factory.user(Role.DEVELOPER) for how in ("suspended", "inactive", "gone")}
    common = await factory.project(bystander, *victims.values())
    async with live_server(factory.ctx) as live, live.http(admin) as http:
        tokens = {how: live.token_for(user) for how, user in victims.items()}
        taps = {
            how: [Tap(f"{how}-{n}", victims[how], await live.connect(tokens[how])) for n in (1, 2)]
            for how in victims
        }
        bystander_tap = await connect(live, "bystander", bystander)

        for how, user in victims.items():
            if how == "gone":
                response = await http.delete(f"/api/v1/users/{user.id}")
                assert response.status_code == 204
            else:
                response = await http.post(f"/api/v1/users/{user.id}/status", json={"status": how})
                assert response.status_code == 200
            for tap in taps[how]:
                code, _reason = await tap.until_closed()
                assert code == 4003, (tap.name, tap.close)
                assert [m["type"] for m in tap.replies] == ["error"], tap.name
                assert tap.replies[0]["payload"]["code"] == "forbidden"
                # They learn why: the event about their own account, then the error.
                expected = "deleted" if how == "gone" else "status_changed"
                assert briefs(tap) == [("user", expected, user.id)], tap.name
                assert tap.events[0]["payload"]["status"] == ("active" if how == "gone" else how)

            # The same (unexpired) token no longer opens a connection.
            again = await live.connect(tokens[how], welcome=False)
            refusal = await again.next()
            assert refusal["type"] == "error"
            assert refusal["payload"]["code"] == "invalid_token"
            assert (await again.closed())[0] == 4001

        last, fenced = await fence(factory, common)
        await bystander_tap.pump_until(last)
        assert bystander_tap.close is None
        assert briefs(bystander_tap) == [fenced]
        assert live.gateway.hub.connection_count == 1


async def test_subscriptions_narrow_a_connection_and_all_restores_it(factory: Factory) -> None:
    manager = await factory.user(Role.MANAGER)
    me = await factory.user(Role.DEVELOPER)
    stranger = await factory.user(Role.MANAGER)
    admin = await factory.user(Role.ADMIN)
    p1 = await factory.project(manager, me)
    p2 = await factory.project(manager, me)
    hidden = await factory.project(stranger)
    b1 = await new_bug(factory, manager, p1, "in p1")
    b2 = await new_bug(factory, manager, p2, "in p2, watched")
    b3 = await new_bug(factory, manager, p2, "in p2, not watched")
    hidden_bug = await new_bug(factory, stranger, hidden)
    ctx = factory.ctx
    as_manager = Factory.actor(manager)
    admin_actor = Actor(user_id=admin.id, role=admin.role)

    async def edit(bug_id: int) -> None:
        data = BugUpdate(title=f"edit {next(_seq)}")
        await bugs.update_bug(ctx, as_manager, bug_id, data)

    async def comment(bug_id: int) -> None:
        await comments.create_comment(ctx, as_manager, bug_id, CommentCreate(content="hm"))

    async def personal_fence() -> tuple[int, Brief]:
        """An event about my own account: it arrives whatever I subscribed to."""
        data = UserUpdate(email=f"me.{next(_seq)}@example.com")
        result = await users.update_user(ctx, admin_actor, me.id, data)
        return result.events[-1].event_id, ("user", "updated", me.id)

    async with live_server(ctx) as live:
        tap = await connect(live, "narrowed", me)
        whole = await connect(live, "everything", me)  # my other connection: not narrowed
        assert tap.client.welcome["subscription"] == {"all": True}
        stream = Stream(ctx, await Visibility.load(ctx), await last_event_id(ctx))

        async def refused(payload: dict[str, Any]) -> None:
            reply = await tap.command("subscribe", payload)
            assert reply["type"] == "error", reply
            assert reply["payload"]["code"] == "not_found"
            assert reply["payload"]["request_id"].startswith("subscribe-")

        async def received_after(action: Any) -> list[Brief]:
            """Run `action`, then a personal fence; what the tap received for it."""
            start = tap.events[-1]["event_id"] if tap.events else 0
            await action()
            last, fenced = await personal_fence()
            await tap.pump_until(last)
            got = briefs(tap, start)
            assert got[-1] == fenced
            return got[:-1]

        # 1. One project: its events, plus what is personal (my notification, my account).
        result = await tap.ack("subscribe", {"projects": [p1.id]})
        assert result == {"all": False, "projects": [p1.id], "bug_reports": []}

        async def round_one() -> None:
            await edit(b1)
            await edit(b2)
            await bugs.assign_bug(ctx, as_manager, b2, BugAssign(assignee_id=me.id))

        assert await received_after(round_one) == [
            ("bug_report", "updated", b1),
            ("notification", "bug_assigned", b2),
        ]

        # Invisible things are not_found, all or nothing: p2 is not added either.
        await refused({"projects": [p2.id, hidden.id]})
        await refused({"bug_reports": [hidden_bug]})
        await refused({"projects": [hidden.id + 1000]})

        async def round_two() -> None:
            await edit(b2)
            await edit(b1)

        assert await received_after(round_two) == [("bug_report", "updated", b1)]

        # 2. Add one bug report: its events and its comments' events, not its siblings'.
        result = await tap.ack("subscribe", {"bug_reports": [b2]})
        assert result == {"all": False, "projects": [p1.id], "bug_reports": [b2]}

        async def round_three() -> None:
            await comment(b2)  # I am b2's assignee: a comment_added notification as well
            await comment(b3)
            await bugs.change_bug_status(
                ctx, as_manager, b3, BugStatusChange(status=BugStatus.RESOLVED)
            )
            await edit(b1)
            await edit(b2)

        assert await received_after(round_three) == [
            ("comment", "created", b2),
            ("notification", "comment_added", b2),
            ("bug_report", "updated", b1),
            ("bug_report", "updated", b2),
        ]

        # 3. Unsubscribe the project: the bug report stays.
        result = await tap.ack("unsubscribe", {"projects": [p1.id]})
        assert result == {"all": False, "projects": [], "bug_reports": [b2]}

        async def round_four() -> None:
            await edit(b1)
            await edit(b2)

        assert await received_after(round_four) == [("bug_report", "updated", b2)]

        # 4. Unsubscribe the bug report too: personal events only.
        result = await tap.ack("unsubscribe", {"bug_reports": [b2]})
        assert result == {"all": False, "projects": [], "bug_reports": []}

        async def round_five() -> None:
            await edit(b1)
            await edit(b2)
            await comment(b2)

        assert await received_after(round_five) == [("notification", "comment_added", b2)]

        # 5. Everything again.
        assert await tap.ack("subscribe", {"all": True}) == {"all": True}
        await refused({"projects": [hidden.id]})  # and it stays "everything"

        async def round_six() -> None:
            await edit(b1)
            await edit(b3)

        assert await received_after(round_six) == [
            ("bug_report", "updated", b1),
            ("bug_report", "updated", b3),
        ]

        # The other connection of the same user was never narrowed: it had everything.
        await stream.sync()
        await whole.pump_until(stream.position)
        assert whole.events == stream.expected(me)
        assert_commit_order(whole)
