"""`subscribe` / `unsubscribe`: narrowing what a connection receives.

By default a connection receives every event its user may see. `subscribe` with `projects`
and/or `bug_reports` narrows it to those (personal events, notifications and the user's own
account, always arrive); more `subscribe`s add to the set, `unsubscribe` removes from it, and
`{"all": true}` in `subscribe` goes back to everything (in `unsubscribe`: to personal events
only). Subscribing to something the user may not see is `not_found`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bugstream.domain.errors import FieldError, ValidationFailed
from bugstream.domain.models import EntityId
from bugstream.domain.protocol import ClientMessage
from bugstream.domain.validation import error_from_pydantic
from bugstream.gateway.connection import Connection
from bugstream.gateway.messages import Inbound
from bugstream.services import bugs, projects
from bugstream.services.context import Actor, ServiceContext
from bugstream.services.users import active_user

MAX_SUBSCRIPTION_IDS = 1000


class SubscriptionPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    projects: list[EntityId] = Field(default_factory=list, max_length=MAX_SUBSCRIPTION_IDS)
    bug_reports: list[EntityId] = Field(default_factory=list, max_length=MAX_SUBSCRIPTION_IDS)
    all: bool = False


def parse_subscription(payload: dict[str, Any]) -> SubscriptionPayload:
    try:
        return SubscriptionPayload.model_validate(payload)
    except ValidationError as exc:
        raise error_from_pydantic(exc.errors()) from None


async def apply_subscription(
    ctx: ServiceContext, conn: Connection, message: Inbound
) -> dict[str, object]:
    request = parse_subscription(message.payload)
    if not request.all and not request.projects and not request.bug_reports:
        raise ValidationFailed(
            [FieldError("payload", "non_empty", "name projects, bug_reports, or all: true")]
        )
    sub = conn.subscription
    if message.type == ClientMessage.SUBSCRIBE:
        if request.all:
            sub.projects = sub.bug_reports = None
            return sub.describe()
        user = await active_user(ctx, conn.user_id)
        actor = Actor(user_id=user.id, role=user.role)
        for project_id in request.projects:
            await projects.get_project(ctx, actor, project_id)  # not_found unless visible
        for bug_id in request.bug_reports:
            await bugs.get_bug(ctx, actor, bug_id)
        sub.projects = (sub.projects or set()) | set(request.projects)
        sub.bug_reports = (sub.bug_reports or set()) | set(request.bug_reports)
    elif request.all:
        sub.projects, sub.bug_reports = set(), set()
    elif not sub.narrowed:
        # "Everything except X" is not a set we keep; say so instead of guessing.
        raise ValidationFailed(
            [FieldError("payload", "narrowed", "subscribe to what you want before unsubscribing")]
        )
    else:
        assert sub.projects is not None and sub.bug_reports is not None
        sub.projects.difference_update(request.projects)
        sub.bug_reports.difference_update(request.bug_reports)
    return sub.describe()
