"""POST /auth/token: username and password for an access token."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from bugstream.api.deps import Ctx, CurrentActor, get_token_config
from bugstream.api.error_responses import errors, resource_router
from bugstream.api.login_throttle import LoginThrottle
from bugstream.auth.tokens import TokenConfig, issue_token, verify_token
from bugstream.domain.errors import AuthError, BugstreamError, ErrorCode, Forbidden
from bugstream.domain.models import User
from bugstream.domain.tickets import TicketClaims, TicketLedger
from bugstream.services.users import authenticate, get_user

router = resource_router("/auth", "auth")


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the token expires")
    expires_at: datetime
    user: User


def _token_for(config: TokenConfig, user: User) -> TokenResponse:
    if config.secret is None or "HS256" not in config.algorithms:
        raise Forbidden(
            "this server does not issue tokens: get one from the identity provider "
            "(BUGSTREAM_JWT_SECRET and HS256 enable password login)"
        )
    token = issue_token(config, user_id=user.id, role=user.role.value)
    claims = verify_token(config, token)
    return TokenResponse(
        access_token=token,
        expires_in=config.access_ttl_seconds,
        expires_at=claims.expires_at,
        user=user,
    )


@router.post(
    "/token",
    summary="Log in: exchange username and password for a JWT",
    responses=errors(ErrorCode.INVALID_CREDENTIALS, ErrorCode.FORBIDDEN, ErrorCode.RATE_LIMITED),
)
async def login(
    body: Credentials,
    ctx: Ctx,
    config: Annotated[TokenConfig, Depends(get_token_config)],
    request: Request,
) -> TokenResponse:
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(body.username, address)
    if wait is not None:
        raise BugstreamError(
            f"too many failed sign-ins; try again in {wait} s",
            code=ErrorCode.RATE_LIMITED,
            details={"retry_after": wait},
        )
    try:
        user = await authenticate(ctx, body.username, body.password)
    except AuthError:
        throttle.failed(body.username, address)
        raise
    throttle.succeeded(body.username)
    return _token_for(config, user)


@router.post(
    "/refresh",
    summary="A fresh token for the bearer of a valid one",
    responses=errors(ErrorCode.FORBIDDEN),
)
async def refresh(
    actor: CurrentActor, ctx: Ctx, config: Annotated[TokenConfig, Depends(get_token_config)]
) -> TokenResponse:
    return _token_for(config, await get_user(ctx, actor, actor.user_id))


class TicketResponse(BaseModel):
    ticket: str = Field(description="Open /ws?ticket=<this>: once, within expires_in seconds")
    expires_in: float


@router.post(
    "/ws-ticket",
    summary="A single-use ticket to open /ws without the access token in the URL",
)
async def ws_ticket(
    actor: CurrentActor,
    request: Request,
    config: Annotated[TokenConfig, Depends(get_token_config)],
) -> TicketResponse:
    _, _, token = request.headers.get("authorization", "").partition(" ")
    claims = verify_token(config, token.strip())  # verified already: for its expiry
    tickets: TicketLedger = request.app.state.runtime.tickets
    ttl: float = request.app.state.settings.ws_ticket_ttl_seconds
    ticket = secrets.token_urlsafe(32)
    await tickets.store(ticket, TicketClaims(actor.user_id, claims.expires_at.timestamp()), ttl)
    return TicketResponse(ticket=ticket, expires_in=ttl)
