"""Users: admins manage accounts; everyone reads and edits themselves."""

from __future__ import annotations

from fastapi import Response, status

from bugstream.api.deps import Ctx, CurrentActor, Paging, PathId
from bugstream.api.error_responses import errors, resource_router
from bugstream.domain.enums import Role, UserStatus
from bugstream.domain.errors import ErrorCode
from bugstream.domain.models import Page, User, UserCreate, UserStatusChange, UserUpdate
from bugstream.services import users

router = resource_router("/users", "users")


@router.get("", summary="List users (admins)", responses=errors(ErrorCode.FORBIDDEN))
async def list_users(
    ctx: Ctx,
    actor: CurrentActor,
    page: Paging,
    role: Role | None = None,
    status: UserStatus | None = None,
) -> Page[User]:
    return await users.list_users(ctx, actor, page, role=role, status=status)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a user (admins)",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.CONFLICT),
)
async def create_user(ctx: Ctx, actor: CurrentActor, body: UserCreate) -> User:
    return (await users.create_user(ctx, actor, body)).value


@router.get("/me", summary="The authenticated user")
async def me(ctx: Ctx, actor: CurrentActor) -> User:
    return await users.get_user(ctx, actor, actor.user_id)


@router.get(
    "/{user_id}",
    summary="Read a user (admins, or yourself)",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND),
)
async def get_user(ctx: Ctx, actor: CurrentActor, user_id: PathId) -> User:
    return await users.get_user(ctx, actor, user_id)


@router.patch(
    "/{user_id}",
    summary="Update a user (admins, or yourself without role)",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
)
async def update_user(ctx: Ctx, actor: CurrentActor, user_id: PathId, body: UserUpdate) -> User:
    return (await users.update_user(ctx, actor, user_id, body)).value


@router.post(
    "/{user_id}/status",
    summary="Activate, deactivate or suspend a user (admins)",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
)
async def change_status(
    ctx: Ctx, actor: CurrentActor, user_id: PathId, body: UserStatusChange
) -> User:
    return (await users.change_user_status(ctx, actor, user_id, body)).value


@router.delete(
    "/{user_id}",
    status_code=204,
    summary="Delete a user (admins)",
    responses=errors(ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT),
)
async def delete_user(ctx: Ctx, actor: CurrentActor, user_id: PathId) -> Response:
    await users.delete_user(ctx, actor, user_id)
    return Response(status_code=204)
