"""Reading, editing and deleting one comment (creating is under /bugs/{id}/comments)."""

from __future__ import annotations

from fastapi import Response

from bugstream.api.deps import Ctx, CurrentActor, PathId
from bugstream.api.error_responses import errors, resource_router
from bugstream.domain.errors import ErrorCode
from bugstream.domain.models import Comment, CommentUpdate
from bugstream.services import comments

router = resource_router("/comments", "comments")


@router.get("/{comment_id}", summary="Read a comment", responses=errors(ErrorCode.NOT_FOUND))
async def get_comment(ctx: Ctx, actor: CurrentActor, comment_id: PathId) -> Comment:
    return await comments.get_comment(ctx, actor, comment_id)


@router.patch(
    "/{comment_id}",
    summary="Edit a comment",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def update_comment(
    ctx: Ctx, actor: CurrentActor, comment_id: PathId, body: CommentUpdate
) -> Comment:
    return (await comments.update_comment(ctx, actor, comment_id, body)).value


@router.delete(
    "/{comment_id}",
    status_code=204,
    summary="Delete a comment",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def delete_comment(ctx: Ctx, actor: CurrentActor, comment_id: PathId) -> Response:
    await comments.delete_comment(ctx, actor, comment_id)
    return Response(status_code=204)
