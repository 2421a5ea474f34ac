"""Commands over the socket: the same service functions, with the same checks, as REST.

Each command has a payload model (the REST body plus the id REST takes from the path), a
handler returning the JSON form of the resulting entity, which the `ack` carries, and the
model of that result (scripts/export_catalog_schema.py exports both for the TypeScript client).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bugstream.domain.models import (
    BugAssign,
    BugCreate,
    BugReport,
    BugStatusChange,
    BugUpdate,
    Comment,
    CommentCreate,
    CommentUpdate,
    EntityId,
    Notification,
)
from bugstream.domain.protocol import Command
from bugstream.domain.validation import error_from_pydantic
from bugstream.services import bugs, comments, notifications
from bugstream.services.context import Actor, ServiceContext


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ById(_Payload):
    id: EntityId


class BugUpdatePayload(BugUpdate):
    id: EntityId


class BugStatusPayload(BugStatusChange):
    id: EntityId


class BugAssignPayload(BugAssign):
    id: EntityId


class CommentCreatePayload(CommentCreate):
    bug_report_id: EntityId


class CommentUpdatePayload(CommentUpdate):
    id: EntityId


class NoPayload(_Payload):
    pass


class MarkedRead(BaseModel):
    """The result of `notification.mark_all_read`: the notifications it marked read."""

    ids: list[EntityId]


Handler = Callable[[ServiceContext, Actor, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    payload: type[BaseModel]
    run: Handler
    #: what `run` returns (as JSON): the `result` of the ack
    result: type[BaseModel]


def _without_id(model: BaseModel, target: type[BaseModel]) -> Any:
    return target.model_validate(model.model_dump(exclude={"id"}, exclude_unset=True))


async def _bug_create(ctx: ServiceContext, actor: Actor, p: BugCreate) -> Any:
    return (await bugs.create_bug(ctx, actor, p)).value.to_payload()


async def _bug_update(ctx: ServiceContext, actor: Actor, p: BugUpdatePayload) -> Any:
    result = await bugs.update_bug(ctx, actor, p.id, _without_id(p, BugUpdate))
    return result.value.to_payload()


async def _bug_delete(ctx: ServiceContext, actor: Actor, p: ById) -> Any:
    return (await bugs.delete_bug(ctx, actor, p.id)).value.to_payload()


async def _bug_status(ctx: ServiceContext, actor: Actor, p: BugStatusPayload) -> Any:
    result = await bugs.change_bug_status(ctx, actor, p.id, _without_id(p, BugStatusChange))
    return result.value.to_payload()


async def _bug_assign(ctx: ServiceContext, actor: Actor, p: BugAssignPayload) -> Any:
    result = await bugs.assign_bug(ctx, actor, p.id, _without_id(p, BugAssign))
    return result.value.to_payload()


async def _bug_unassign(ctx: ServiceContext, actor: Actor, p: ById) -> Any:
    return (await bugs.unassign_bug(ctx, actor, p.id)).value.to_payload()


async def _comment_create(ctx: ServiceContext, actor: Actor, p: CommentCreatePayload) -> Any:
    data = CommentCreate(content=p.content)
    return (await comments.create_comment(ctx, actor, p.bug_report_id, data)).value.to_payload()


async def _comment_update(ctx: ServiceContext, actor: Actor, p: CommentUpdatePayload) -> Any:
    data = CommentUpdate(content=p.content)
    return (await comments.update_comment(ctx, actor, p.id, data)).value.to_payload()


async def _comment_delete(ctx: ServiceContext, actor: Actor, p: ById) -> Any:
    return (await comments.delete_comment(ctx, actor, p.id)).value.to_payload()


async def _mark_read(ctx: ServiceContext, actor: Actor, p: ById) -> Any:
    return (await notifications.mark_read(ctx, actor, p.id)).value.to_payload()


async def _mark_all_read(ctx: ServiceContext, actor: Actor, _p: NoPayload) -> Any:
    return MarkedRead(ids=(await notifications.mark_all_read(ctx, actor)).value).model_dump()


COMMANDS: dict[Command, CommandSpec] = {
    Command.BUG_REPORT_CREATE: CommandSpec(BugCreate, _bug_create, BugReport),
    Command.BUG_REPORT_UPDATE: CommandSpec(BugUpdatePayload, _bug_update, BugReport),
    Command.BUG_REPORT_DELETE: CommandSpec(ById, _bug_delete, BugReport),
    Command.BUG_REPORT_CHANGE_STATUS: CommandSpec(BugStatusPayload, _bug_status, BugReport),
    Command.BUG_REPORT_ASSIGN: CommandSpec(BugAssignPayload, _bug_assign, BugReport),
    Command.BUG_REPORT_UNASSIGN: CommandSpec(ById, _bug_unassign, BugReport),
    Command.COMMENT_CREATE: CommandSpec(CommentCreatePayload, _comment_create, Comment),
    Command.COMMENT_UPDATE: CommandSpec(CommentUpdatePayload, _comment_update, Comment),
    Command.COMMENT_DELETE: CommandSpec(ById, _comment_delete, Comment),
    Command.NOTIFICATION_MARK_READ: CommandSpec(ById, _mark_read, Notification),
    Command.NOTIFICATION_MARK_ALL_READ: CommandSpec(NoPayload, _mark_all_read, MarkedRead),
}


def validate_payload(spec: CommandSpec, payload: dict[str, Any]) -> BaseModel:
    """The command's payload model, or `missing_required_fields` / `validation_failed`."""
    try:
        return spec.payload.model_validate(payload)
    except ValidationError as exc:
        raise error_from_pydantic(exc.errors()) from None


async def run_command(
    ctx: ServiceContext, actor: Actor, spec: CommandSpec, payload: BaseModel
) -> Any:
    return await spec.run(ctx, actor, payload)
