"""Request dependencies: the service context, the authenticated actor, paging."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bugstream.auth.tokens import TokenConfig, verify_token
from bugstream.domain.errors import AuthError, ErrorCode
from bugstream.domain.models import MAX_ID, PageRequest
from bugstream.services.context import Actor, ServiceContext
from bugstream.services.users import active_actor

_bearer = HTTPBearer(auto_error=False, description="An access token from POST /api/v1/auth/token")


# Dependencies are `async def` even when they do no I/O: FastAPI runs a plain `def` one on a
# worker thread, a thread hand-off per dependency per request.


async def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


async def get_token_config(request: Request) -> TokenConfig:
    config: TokenConfig = request.app.state.token_config
    return config


async def get_actor(
    ctx: Annotated[ServiceContext, Depends(get_ctx)],
    config: Annotated[TokenConfig, Depends(get_token_config)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The user of the bearer token, who must still exist and be active.

    The role comes from the database, not the token, so a role change applies at once.
    """
    if credentials is None:
        raise AuthError("an Authorization: Bearer token is required", code=ErrorCode.INVALID_TOKEN)
    claims = verify_token(config, credentials.credentials)
    return await active_actor(ctx, claims.user_id)


async def get_page(
    limit: Annotated[int, Query(ge=1, le=200, description="Items per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31, description="Items to skip")] = 0,
) -> PageRequest:
    return PageRequest(limit=limit, offset=offset)


Ctx = Annotated[ServiceContext, Depends(get_ctx)]
CurrentActor = Annotated[Actor, Depends(get_actor)]
Paging = Annotated[PageRequest, Depends(get_page)]

#: Entity ids in paths and filters: positive, at most `MAX_ID` (a larger number is
#: `validation_failed`, not a database error).
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
