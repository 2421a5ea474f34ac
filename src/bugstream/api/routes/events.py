"""The history of events: what /ws delivers, read page by page (polling clients, scripts,
resync). Each item is the very object /ws sends for the event; docs/api.md, "Events"."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from bugstream.api.deps import Ctx, CurrentActor
from bugstream.api.error_responses import errors, resource_router
from bugstream.domain.enums import Role
from bugstream.domain.errors import ErrorCode
from bugstream.domain.events import EventName, EventType
from bugstream.domain.history import EventHistory, Reader
from bugstream.domain.models import MAX_ID
from bugstream.services.access_snapshot import load_access

#: Items per page when the request does not say.
DEFAULT_LIMIT = 100


class EventItem(BaseModel):
    """One event, as /ws sends it."""

    type: EventType
    event: EventName
    payload: dict[str, Any]
    event_id: int = Field(ge=1)


class EventPage(BaseModel):
    items: list[EventItem] = Field(description="The events you may see, oldest first")
    next_after: int = Field(
        ge=0,
        description="Pass as `after` for the next page: every event up to it was looked at "
        "(the last item's id, or further when the events after it are not yours to see)",
    )
    latest_event_id: int = Field(
        ge=0, description="The newest event the server had relayed when it read this page"
    )
    has_more: bool = Field(
        description="More events up to latest_event_id remain: ask again with next_after "
        "(a page may hold fewer than `limit` items, even none, and still have more)"
    )


def events_router(max_limit: int) -> APIRouter:
    """The `/events` resource; `limit` is at most `max_limit` (BUGSTREAM_HISTORY_MAX_LIMIT)."""
    router = resource_router("/events", "events")

    @router.get(
        "",
        summary="Events you may see after an event id, oldest first (as /ws delivers them)",
        responses=errors(ErrorCode.RESYNC_REQUIRED),
    )
    async def list_events(
        request: Request,
        ctx: Ctx,
        actor: CurrentActor,
        after: Annotated[
            int, Query(ge=0, le=MAX_ID, description="An event id: the events after it")
        ] = 0,
        # Not `Annotated`: its bound is this function's argument, which a string annotation
        # (from __future__ import annotations) could not name.
        limit: int = Query(
            min(DEFAULT_LIMIT, max_limit), ge=1, le=max_limit, description="Items per page, at most"
        ),
    ) -> EventPage:
        # The caller's access now, as a /ws replay filters with the resuming connection's.
        access = await load_access(ctx, actor.user_id)
        reader = Reader(access.user.id, access.user.role is Role.ADMIN, access.project_ids)
        history: EventHistory = request.app.state.event_history
        page = await history.page(reader, after, limit)
        return EventPage(
            items=[EventItem.model_validate(event.envelope()) for event in page.events],
            next_after=page.next_after,
            latest_event_id=page.latest_event_id,
            has_more=page.has_more,
        )

    return router
