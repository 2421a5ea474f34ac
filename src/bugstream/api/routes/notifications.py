"""Your notifications."""

from __future__ import annotations

from pydantic import BaseModel

from bugstream.api.deps import Ctx, CurrentActor, Paging, PathId
from bugstream.api.error_responses import errors, resource_router
from bugstream.domain.errors import ErrorCode
from bugstream.domain.models import Notification, Page
from bugstream.services import notifications

router = resource_router("/notifications", "notifications")


class MarkedRead(BaseModel):
    ids: list[int]


@router.get("", summary="Your notifications, oldest first")
async def list_notifications(
    ctx: Ctx, actor: CurrentActor, page: Paging, unread: bool = False
) -> Page[Notification]:
    return await notifications.list_notifications(ctx, actor, page, unread_only=unread)


@router.get(
    "/{notification_id}",
    summary="Read one of your notifications",
    responses=errors(ErrorCode.NOT_FOUND),
)
async def get_notification(ctx: Ctx, actor: CurrentActor, notification_id: PathId) -> Notification:
    return await notifications.get_notification(ctx, actor, notification_id)


@router.post(
    "/{notification_id}/read",
    summary="Mark one notification read",
    responses=errors(ErrorCode.NOT_FOUND),
)
async def mark_read(ctx: Ctx, actor: CurrentActor, notification_id: PathId) -> Notification:
    return (await notifications.mark_read(ctx, actor, notification_id)).value


@router.post("/read-all", summary="Mark all your notifications read")
async def mark_all_read(ctx: Ctx, actor: CurrentActor) -> MarkedRead:
    return MarkedRead(ids=(await notifications.mark_all_read(ctx, actor)).value)
