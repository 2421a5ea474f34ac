"""Bug reports, their status, assignment and comments."""

from __future__ import annotations

from fastapi import Response, status

from bugstream.api.deps import Ctx, CurrentActor, Paging, PathId, QueryId
from bugstream.api.error_responses import errors, resource_router
from bugstream.domain.enums import BugStatus, Priority
from bugstream.domain.errors import ErrorCode
from bugstream.domain.models import (
    BugAssign,
    BugCreate,
    BugFilter,
    BugReport,
    BugStatusChange,
    BugUpdate,
    Comment,
    CommentCreate,
    Notification,
    Page,
)
from bugstream.services import bugs, comments, reminders

router = resource_router("/bugs", "bug reports")


@router.get("", summary="Bug reports you may see, filtered")
async def list_bugs(
    ctx: Ctx,
    actor: CurrentActor,
    page: Paging,
    project_id: QueryId = None,
    status: BugStatus | None = None,
    priority: Priority | None = None,
    assignee_id: QueryId = None,
) -> Page[BugReport]:
    filters = BugFilter(
        project_id=project_id, status=status, priority=priority, assignee_id=assignee_id
    )
    return await bugs.list_bugs(ctx, actor, filters, page)


@router.post(
    "",
    status_code=201,
    summary="Report a bug",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
)
async def create_bug(ctx: Ctx, actor: CurrentActor, body: BugCreate) -> BugReport:
    return (await bugs.create_bug(ctx, actor, body)).value


@router.get("/{bug_id}", summary="Read a bug report", responses=errors(ErrorCode.NOT_FOUND))
async def get_bug(ctx: Ctx, actor: CurrentActor, bug_id: PathId) -> BugReport:
    return await bugs.get_bug(ctx, actor, bug_id)


@router.patch(
    "/{bug_id}",
    summary="Edit title, description or priority",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def update_bug(ctx: Ctx, actor: CurrentActor, bug_id: PathId, body: BugUpdate) -> BugReport:
    return (await bugs.update_bug(ctx, actor, bug_id, body)).value


@router.delete(
    "/{bug_id}",
    status_code=204,
    summary="Delete a bug report",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def delete_bug(ctx: Ctx, actor: CurrentActor, bug_id: PathId) -> Response:
    await bugs.delete_bug(ctx, actor, bug_id)
    return Response(status_code=204)


@router.post(
    "/{bug_id}/status",
    summary="Change the status",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def change_status(
    ctx: Ctx, actor: CurrentActor, bug_id: PathId, body: BugStatusChange
) -> BugReport:
    return (await bugs.change_bug_status(ctx, actor, bug_id, body)).value


@router.post(
    "/{bug_id}/assign",
    summary="Assign to a project member",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
)
async def assign(ctx: Ctx, actor: CurrentActor, bug_id: PathId, body: BugAssign) -> BugReport:
    return (await bugs.assign_bug(ctx, actor, bug_id, body)).value


@router.post(
    "/{bug_id}/unassign",
    summary="Remove the assignee",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def unassign(ctx: Ctx, actor: CurrentActor, bug_id: PathId) -> BugReport:
    return (await bugs.unassign_bug(ctx, actor, bug_id)).value


@router.post(
    "/{bug_id}/remind",
    status_code=201,
    summary="Send the assignee a reminder now",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
)
async def remind(ctx: Ctx, actor: CurrentActor, bug_id: PathId) -> Notification:
    return (await reminders.remind_now(ctx, actor, bug_id)).value


@router.get(
    "/{bug_id}/comments", summary="Comments on a bug report", responses=errors(ErrorCode.NOT_FOUND)
)
async def list_comments(
    ctx: Ctx, actor: CurrentActor, bug_id: PathId, page: Paging
) -> Page[Comment]:
    return await comments.list_comments(ctx, actor, bug_id, page)


@router.post(
    "/{bug_id}/comments",
    status_code=status.HTTP_201_CREATED,
    summary="Comment",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def create_comment(
    ctx: Ctx, actor: CurrentActor, bug_id: PathId, body: CommentCreate
) -> Comment:
    return (await comments.create_comment(ctx, actor, bug_id, body)).value
