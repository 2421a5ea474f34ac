"""Operations for admins."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from bugstream.api.deps import Ctx, CurrentActor
from bugstream.domain.models import Notification
from bugstream.services import reminders

router = APIRouter(prefix="/admin", tags=["admin"])


class ReminderRun(BaseModel):
    sent: list[Notification]


@router.post("/reminders/run", summary="Send every reminder that is due, now (admins)")
async def run_reminders(ctx: Ctx, actor: CurrentActor) -> ReminderRun:
    return ReminderRun(sent=(await reminders.run_reminders(ctx, actor)).value)
