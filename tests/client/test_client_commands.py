"""Commands: the ack's result, errors typed by code, timeouts, and commands across
reconnects. Results and errors come from a real server; timing cases from a scripted one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bugstream.client import (
    BugstreamError,
    Client,
    CommandError,
    CommandTimeout,
    ConnectionLost,
    ErrorCode,
    Forbidden,
    NotFound,
    Phase,
    Transport,
    ValidationFailed,
)
from bugstream.domain.enums import Role
from bugstream.domain.protocol import Command
from bugstream.gateway.commands import COMMANDS
from bugstream.testing.scripted import Close, FakeSleep, Serve, Step, ack, scripted_server
from tests.support.factory import Factory
from tests.support.live import live_server

# ---- against the real server ----------------------------------------------------------------


async def test_commands_return_the_ack_result_or_raise_typed_errors(
    factory: Factory, transport: Transport
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with (
        live_server(factory.ctx) as live,
        Client(live.ws_url, token=live.token_for(dev), transport=transport) as client,
    ):
        created = await client.send(
            "bug_report.create", {"project_id": project.id, "title": "Crash on save"}
        )
        assert created["title"] == "Crash on save"
        assert created["project_id"] == project.id
        assert created["status"] == "open"

        moved = await client.send(
            "bug_report.change_status", {"id": created["id"], "status": "in_progress"}
        )
        assert moved["status"] == "in_progress"

        with pytest.raises(NotFound) as missing:
            await client.send("bug_report.update", {"id": 999_999, "title": "x"})
        assert missing.value.code is ErrorCode.NOT_FOUND
        assert missing.value.details["request_id"].startswith("c")

        # Developers may not delete bug reports (docs/api.md).
        with pytest.raises(Forbidden):
            await client.send("bug_report.delete", {"id": created["id"]})

        with pytest.raises(ValidationFailed) as invalid:
            await client.send(
                "bug_report.create",
                {"project_id": project.id, "title": "ok", "priority": "urgent"},
            )
        assert [f["field"] for f in invalid.value.fields] == ["priority"]

        with pytest.raises(CommandError) as missing_fields:
            await client.send("bug_report.create", {"title": "no project"})
        assert missing_fields.value.code is ErrorCode.MISSING_REQUIRED_FIELDS
        assert missing_fields.value.details["fields"] == ["project_id"]

        with pytest.raises(BugstreamError) as unknown:
            await client.send("bug_report.explode", {})
        assert unknown.value.code is ErrorCode.UNKNOWN_EVENT_TYPE

        # The connection survived every error.
        assert client.state.phase is Phase.CONNECTED
        again = await client.send(
            "comment.create", {"bug_report_id": created["id"], "content": "hi"}
        )
        assert again["content"] == "hi"


# ---- timing, with a scripted server ---------------------------------------------------------


def silent(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    return None


def answer(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    return [ack(message, {"echo": message["payload"]})]


async def test_no_answer_within_the_timeout_raises_command_timeout() -> None:
    async with (
        scripted_server([Serve(reply=silent)]) as server,
        Client(server.url, token="t") as client,
    ):
        with pytest.raises(CommandTimeout) as timed_out:
            await client.send("bug_report.create", {"title": "x"}, timeout=0.2)
        assert isinstance(timed_out.value, TimeoutError)
        assert timed_out.value.command == "bug_report.create"
        assert server.received[0]["request_id"] == timed_out.value.request_id
        # A late answer to it is ignored; later commands work.
        assert client.state.phase is Phase.CONNECTED


async def test_each_command_gets_its_own_answer() -> None:
    async with (
        scripted_server([Serve(reply=answer)]) as server,
        Client(server.url, token="t") as client,
    ):
        results = await asyncio.gather(
            *(client.send("notification.mark_read", {"id": n}) for n in range(5))
        )
    assert results == [{"echo": {"id": n}} for n in range(5)]
    assert len({m["request_id"] for m in server.received}) == 5


async def test_a_command_sent_while_reconnecting_waits_for_the_connection() -> None:
    sleep = FakeSleep()
    sleep.gate.clear()  # hold the client in its backoff wait
    script: list[Step] = [Close(1001, welcome=True), Serve(reply=answer)]
    async with (
        scripted_server(script) as server,
        Client(server.url, token="t", sleep=sleep) as client,
    ):
        await sleep.sleeping.wait()
        assert client.state.phase is Phase.RECONNECTING
        pending = asyncio.create_task(client.send("notification.mark_all_read", {}, timeout=5))
        await asyncio.sleep(0.05)
        assert not pending.done()
        sleep.gate.set()
        assert await pending == {"echo": {}}
    assert server.received[0]["type"] == "notification.mark_all_read"


async def test_waiting_for_a_connection_counts_against_the_timeout() -> None:
    sleep = FakeSleep()
    sleep.gate.clear()
    async with (
        scripted_server([Close(1001, welcome=True)]) as server,
        Client(server.url, token="t", sleep=sleep) as client,
    ):
        await sleep.sleeping.wait()
        with pytest.raises(CommandTimeout):
            await client.send("notification.mark_all_read", timeout=0.1)


async def test_a_connection_lost_before_the_answer_is_reported() -> None:
    def drop(message: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"close": 1001}]

    sleep = FakeSleep()
    sleep.gate.clear()
    async with (
        scripted_server([Serve(reply=drop)]) as server,
        Client(server.url, token="t", sleep=sleep) as client,
    ):
        with pytest.raises(ConnectionLost, match="may or may not have been applied"):
            await client.send("bug_report.delete", {"id": 1})
    assert len(server.received) == 1


async def test_every_commands_ack_carries_its_declared_result_model(
    factory: Factory, transport: Transport
) -> None:
    """`CommandSpec.result` (what the TypeScript types promise `send` resolves with) is what
    the server's acks carry: every field of the model, and nothing else."""
    manager = await factory.user(Role.MANAGER)
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(manager, dev)
    results: dict[Command, Any] = {}
    async with (
        live_server(factory.ctx) as live,
        Client(live.ws_url, token=live.token_for(manager), transport=transport) as as_manager,
        Client(live.ws_url, token=live.token_for(dev), transport=transport) as as_dev,
    ):

        async def run(client: Client, command: Command, payload: dict[str, Any]) -> Any:
            results[command] = await client.send(command.value, payload)
            return results[command]

        bug = await run(
            as_manager, Command.BUG_REPORT_CREATE, {"project_id": project.id, "title": "t"}
        )
        ref = {"id": bug["id"]}
        await run(as_manager, Command.BUG_REPORT_UPDATE, {**ref, "title": "t2"})
        await run(as_manager, Command.BUG_REPORT_CHANGE_STATUS, {**ref, "status": "in_progress"})
        await run(as_manager, Command.BUG_REPORT_ASSIGN, {**ref, "assignee_id": dev.id})
        await run(as_manager, Command.BUG_REPORT_UNASSIGN, ref)
        comment = await run(
            as_manager, Command.COMMENT_CREATE, {"bug_report_id": bug["id"], "content": "c"}
        )
        await run(as_manager, Command.COMMENT_UPDATE, {"id": comment["id"], "content": "c2"})
        await run(as_manager, Command.COMMENT_DELETE, {"id": comment["id"]})
        async with live.http(dev) as http:
            listed = (await http.get("/api/v1/notifications")).json()["items"]
        await run(as_dev, Command.NOTIFICATION_MARK_READ, {"id": listed[0]["id"]})
        await run(as_dev, Command.NOTIFICATION_MARK_ALL_READ, {})
        await run(as_manager, Command.BUG_REPORT_DELETE, ref)
    assert set(results) == set(COMMANDS)
    for command, result in results.items():
        model = COMMANDS[command].result
        assert set(result) == set(model.model_fields), command
        assert model.model_validate(result).model_dump(mode="json") == result, command
