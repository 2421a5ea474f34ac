"""What the gateway needs to know about a connecting user, consistent with an event id."""

from __future__ import annotations

from dataclasses import dataclass

from bugstream.domain.models import User
from bugstream.services.context import ServiceContext
from bugstream.services.users import active_user_in
from bugstream.store.outbox import latest_event_id


@dataclass(frozen=True, slots=True)
class AccessSnapshot:
    """The user and the projects they belong to, as of event `as_of`: every change to them
    with a larger event id is still to be applied by whoever holds the snapshot."""

    user: User
    project_ids: frozenset[int]
    as_of: int


async def load_access(ctx: ServiceContext, user_id: int) -> AccessSnapshot:
    """The active user's access; `invalid_token` if they are gone or not active.

    The event id is read *before* the memberships, so the snapshot is at least as new as
    `as_of`: replaying access events after `as_of` on top of it is idempotent and converges.
    """
    async with ctx.db.read() as repos:  # one transaction: a handshake costs one round trip
        as_of = await latest_event_id(repos.conn)
        projects = await repos.members.project_ids_of(user_id)
        user = await active_user_in(repos, user_id)
    return AccessSnapshot(user=user, project_ids=frozenset(projects), as_of=as_of)
