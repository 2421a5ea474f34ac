"""Operations for admins."""

from __future__ import annotations

from pydantic import BaseModel

from bugstream.api.deps import Ctx, CurrentActor
from bugstream.api.error_responses import errors, resource_router
from bugstream.domain.errors import ErrorCode
from bugstream.domain.models import Notification
from bugstream.services import reminders

router = resource_router("/admin", "admin")


class ReminderRun(BaseModel):
    sent: list[Notification]


@router.post(
    "/reminders/run",
    summary="Send every reminder that is due, now (admins)",
    responses=errors(ErrorCode.FORBIDDEN),
)
async def run_reminders(ctx: Ctx, actor: CurrentActor) -> ReminderRun:
    return ReminderRun(sent=(await reminders.run_reminders(ctx, actor)).value)
