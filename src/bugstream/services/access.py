"""Permission checks against the matrix in `bugstream.domain.permissions`.

Visibility comes first: a project (and everything in it) that the actor may not see answers
`not_found`, so its existence does not leak. A visible thing the actor's role may not change
answers `forbidden`.
"""

from __future__ import annotations

from bugstream.domain.errors import Forbidden, NotFound
from bugstream.domain.permissions import Action, allows, sees_all_projects
from bugstream.services.context import Actor
from bugstream.store.repositories import MembershipRepository


async def can_see_project(members: MembershipRepository, actor: Actor, project_id: int) -> bool:
    return sees_all_projects(actor.role) or await members.is_member(project_id, actor.user_id)


async def require_visible(
    members: MembershipRepository, actor: Actor, project_id: int, what: str
) -> None:
    """Raise not_found unless the actor may see the project `what` belongs to."""
    if not await can_see_project(members, actor, project_id):
        raise NotFound(f"{what} not found")


async def require(
    members: MembershipRepository,
    actor: Actor,
    action: Action,
    *,
    project_id: int | None = None,
    owner_id: int | None = None,
    what: str = "resource",
) -> None:
    """Raise unless `actor` may do `action` (in `project_id`, on a thing owned by `owner_id`)."""
    is_member = False
    if project_id is not None:
        await require_visible(members, actor, project_id, what)
        is_member = sees_all_projects(actor.role) or await members.is_member(
            project_id, actor.user_id
        )
    is_owner = owner_id is not None and owner_id == actor.user_id
    if not allows(actor.role, action, is_member=is_member, is_owner=is_owner):
        raise Forbidden(f"role '{actor.role.value}' does not allow '{action.value}' here")
