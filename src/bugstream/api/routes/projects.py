"""Projects and their members."""

from __future__ import annotations

from fastapi import Request, Response, status

from bugstream.api.deps import Ctx, CurrentActor, Paging, PathId
from bugstream.api.error_responses import errors, resource_router
from bugstream.domain.errors import ErrorCode
from bugstream.domain.models import (
    Membership,
    MembershipAdd,
    Page,
    Project,
    ProjectCreate,
    ProjectUpdate,
    User,
)
from bugstream.domain.presence import PresenceReader, ProjectPresence, project_presence
from bugstream.services import projects

router = resource_router("/projects", "projects")


@router.get("", summary="Projects you are a member of (all, for admins)")
async def list_projects(ctx: Ctx, actor: CurrentActor, page: Paging) -> Page[Project]:
    return await projects.list_projects(ctx, actor, page)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a project",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.CONFLICT),
)
async def create_project(ctx: Ctx, actor: CurrentActor, body: ProjectCreate) -> Project:
    return (await projects.create_project(ctx, actor, body)).value


@router.get("/{project_id}", summary="Read a project", responses=errors(ErrorCode.NOT_FOUND))
async def get_project(ctx: Ctx, actor: CurrentActor, project_id: PathId) -> Project:
    return await projects.get_project(ctx, actor, project_id)


@router.patch(
    "/{project_id}",
    summary="Update a project",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
)
async def update_project(
    ctx: Ctx, actor: CurrentActor, project_id: PathId, body: ProjectUpdate
) -> Project:
    return (await projects.update_project(ctx, actor, project_id, body)).value


@router.delete(
    "/{project_id}",
    status_code=204,
    summary="Delete a project and all in it",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def delete_project(ctx: Ctx, actor: CurrentActor, project_id: PathId) -> Response:
    await projects.delete_project(ctx, actor, project_id)
    return Response(status_code=204)


@router.get(
    "/{project_id}/members", summary="The project's members", responses=errors(ErrorCode.NOT_FOUND)
)
async def list_members(ctx: Ctx, actor: CurrentActor, project_id: PathId) -> list[User]:
    return await projects.list_members(ctx, actor, project_id)


@router.get(
    "/{project_id}/presence",
    summary="Who is online in the project, and who views which of its bug reports",
    responses=errors(ErrorCode.NOT_FOUND),
)
async def get_presence(
    request: Request, ctx: Ctx, actor: CurrentActor, project_id: PathId
) -> ProjectPresence:
    members = await projects.list_members(ctx, actor, project_id)  # 404 as GET /projects/{id}
    reader: PresenceReader = request.app.state.presence
    return await project_presence(reader, project_id, {m.id: m.username for m in members})


@router.post(
    "/{project_id}/members",
    status_code=status.HTTP_201_CREATED,
    summary="Add a member",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
)
async def add_member(
    ctx: Ctx, actor: CurrentActor, project_id: PathId, body: MembershipAdd
) -> Membership:
    return (await projects.add_member(ctx, actor, project_id, body)).value


@router.delete(
    "/{project_id}/members/{user_id}",
    status_code=204,
    summary="Remove a member",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def remove_member(
    ctx: Ctx, actor: CurrentActor, project_id: PathId, user_id: PathId
) -> Response:
    await projects.remove_member(ctx, actor, project_id, user_id)
    return Response(status_code=204)
