"""Users: accounts, roles, status, and logging in."""

from __future__ import annotations

from typing import Any

from bugstream.domain.enums import Role, UserStatus
from bugstream.domain.errors import (
    AuthError,
    Conflict,
    ErrorCode,
    FieldError,
    Forbidden,
    NotFound,
)
from bugstream.domain.events import EventName
from bugstream.domain.models import (
    Page,
    PageRequest,
    User,
    UserCreate,
    UserStatusChange,
    UserUpdate,
)
from bugstream.domain.permissions import Action, allows
from bugstream.services.bugs import unassign_all_of
from bugstream.services.context import Actor, Result, ServiceContext
from bugstream.services.events import user_event
from bugstream.store.database import Transaction
from bugstream.store.repositories import Repositories, UserRepository
from bugstream.store.tables import users

# Spend about as long on an unknown username as on a wrong password (no user enumeration).
_UNKNOWN_USER_HASH: dict[int, str] = {}


def _require_admin(actor: Actor, action: Action) -> None:
    if not allows(actor.role, action):
        raise Forbidden(f"only admins may {action.value.split('.', 1)[1].replace('_', ' ')} users")


async def _require_unique(repo: UserRepository, username: str | None, email: str | None) -> None:
    taken = await repo.find_taken(username, email)
    if taken:
        raise Conflict(
            f"{' and '.join(taken)} already taken",
            details={"fields": [FieldError(f, "unique", f"{f} is already taken") for f in taken]},
        )


async def _get_user(tx: Transaction, user_id: int) -> User:
    user = await tx.users.get(user_id, for_update=True)
    if user is None:
        raise NotFound("user not found")
    return user


async def create_user(ctx: ServiceContext, actor: Actor | None, data: UserCreate) -> Result[User]:
    """Create an account. `actor=None` is the system itself (CLI, first-run bootstrap)."""
    if actor is not None:
        _require_admin(actor, Action.USER_CREATE)
    # Hash before the transaction: the hash is slow on purpose, and must not hold the lock.
    password_hash = await ctx.passwords.hash(data.password)
    async with ctx.db.transaction() as tx:
        await _require_unique(tx.users, data.username, data.email)
        now = ctx.clock()
        user = await tx.users.insert(
            {
                "username": data.username,
                "email": data.email,
                "password_hash": password_hash,
                "role": data.role.value,
                "status": data.status.value,
                "created_at": now,
                "updated_at": now,
            }
        )
        await tx.outbox.emit(user_event(EventName.CREATED, user))
    return Result(user, tuple(tx.outbox.events))


async def update_user(
    ctx: ServiceContext, actor: Actor, user_id: int, data: UserUpdate
) -> Result[User]:
    """Admins update anyone; every user may change their own username, email and password.

    Only admins change roles, and not their own (an admin cannot lock themselves out).
    """
    is_self = actor.user_id == user_id
    if not is_self:
        _require_admin(actor, Action.USER_UPDATE)
    new_hash = None if data.password is None else await ctx.passwords.hash(data.password)
    async with ctx.db.transaction() as tx:
        user = await _get_user(tx, user_id)
        if data.role is not None and data.role is not user.role:
            # Sending the record back with its role unchanged is fine; changing it is not.
            _require_admin(actor, Action.USER_CHANGE_ROLE)
            if is_self:
                raise Conflict("admins cannot change their own role")
        values: dict[str, Any] = {}
        if data.username is not None and data.username != user.username:
            values["username"] = data.username
        if data.email is not None and data.email != user.email:
            values["email"] = data.email
        if data.role is not None and data.role is not user.role:
            values["role"] = data.role.value
        await _require_unique(tx.users, values.get("username"), values.get("email"))
        if new_hash is not None:
            values["password_hash"] = new_hash
        if not values:
            return Result(user)
        values["updated_at"] = ctx.clock()
        updated = await tx.users.update(user_id, values)
        assert updated is not None
        await tx.outbox.emit(user_event(EventName.UPDATED, updated))
    return Result(updated, tuple(tx.outbox.events))


async def change_user_status(
    ctx: ServiceContext, actor: Actor, user_id: int, data: UserStatusChange
) -> Result[User]:
    _require_admin(actor, Action.USER_CHANGE_STATUS)
    if user_id == actor.user_id:
        raise Conflict("admins cannot change their own status")
    async with ctx.db.transaction() as tx:
        user = await _get_user(tx, user_id)
        if user.status is data.status:
            return Result(user)
        updated = await tx.users.update(
            user_id, {"status": data.status.value, "updated_at": ctx.clock()}
        )
        assert updated is not None
        await tx.outbox.emit(
            user_event(EventName.STATUS_CHANGED, updated, previous_status=user.status.value)
        )
    return Result(updated, tuple(tx.outbox.events))


async def delete_user(ctx: ServiceContext, actor: Actor, user_id: int) -> Result[User]:
    """Delete an account. Their bugs are unassigned first (with events); bugs they reported and
    comments they wrote stay, with the reference cleared."""
    _require_admin(actor, Action.USER_DELETE)
    if user_id == actor.user_id:
        raise Conflict("admins cannot delete themselves")
    async with ctx.db.transaction() as tx:
        user = await _get_user(tx, user_id)
        await unassign_all_of(ctx, tx, user_id)
        await tx.users.delete(user_id)
        await tx.outbox.emit(user_event(EventName.DELETED, user))
    return Result(user, tuple(tx.outbox.events))


async def get_user(ctx: ServiceContext, actor: Actor, user_id: int) -> User:
    """Admins read anyone, other users only themselves."""
    if user_id != actor.user_id and not allows(actor.role, Action.USER_LIST):
        raise NotFound("user not found")
    async with ctx.db.read() as repos:
        user = await repos.users.get(user_id)
    if user is None:
        raise NotFound("user not found")
    return user


async def list_users(
    ctx: ServiceContext,
    actor: Actor,
    page: PageRequest,
    *,
    role: Role | None = None,
    status: UserStatus | None = None,
) -> Page[User]:
    _require_admin(actor, Action.USER_LIST)
    where = []
    if role is not None:
        where.append(users.c.role == role.value)
    if status is not None:
        where.append(users.c.status == status.value)
    async with ctx.db.read() as repos:
        items, total = await repos.users.list(where, limit=page.limit, offset=page.offset)
    return Page[User](items=items, total=total, limit=page.limit, offset=page.offset)


async def authenticate(ctx: ServiceContext, username: str, password: str) -> User:
    """The active user with these credentials, or `invalid_credentials`.

    The same error (and about the same time) for an unknown user and a wrong password.
    """
    async with ctx.db.read() as repos:
        found = await repos.users.get_credentials(username)
    if found is None:
        if not _UNKNOWN_USER_HASH:
            _UNKNOWN_USER_HASH[0] = await ctx.passwords.hash("unknown-user-placeholder")
        await ctx.passwords.verify(_UNKNOWN_USER_HASH[0], password)
        raise AuthError("invalid username or password", code=ErrorCode.INVALID_CREDENTIALS)
    user, password_hash = found
    if not await ctx.passwords.verify(password_hash, password):
        raise AuthError("invalid username or password", code=ErrorCode.INVALID_CREDENTIALS)
    if user.status is not UserStatus.ACTIVE:
        raise AuthError(f"account is {user.status.value}", code=ErrorCode.FORBIDDEN)
    return user


async def active_user(ctx: ServiceContext, user_id: int) -> User:
    """The user a token names, if they still exist and are active (else `invalid_token`)."""
    async with ctx.db.read() as repos:
        return await active_user_in(repos, user_id)


async def active_actor(ctx: ServiceContext, user_id: int) -> Actor:
    """`active_user`, as the actor of a request: its id and current role only."""
    async with ctx.db.read(snapshot=False) as repos:
        found = await repos.users.role_and_status(user_id)
    if found is None:
        raise AuthError("the token's user no longer exists", code=ErrorCode.INVALID_TOKEN)
    role, status = found
    if status is not UserStatus.ACTIVE:
        raise AuthError(f"the token's user is {status.value}", code=ErrorCode.INVALID_TOKEN)
    return Actor(user_id=user_id, role=role)


async def active_user_in(repos: Repositories, user_id: int) -> User:
    """`active_user` within an open transaction."""
    user = await repos.users.get(user_id)
    if user is None:
        raise AuthError("the token's user no longer exists", code=ErrorCode.INVALID_TOKEN)
    if user.status is not UserStatus.ACTIVE:
        raise AuthError(f"the token's user is {user.status.value}", code=ErrorCode.INVALID_TOKEN)
    return user


async def any_users(ctx: ServiceContext) -> bool:
    async with ctx.db.read() as repos:
        return await repos.users.any_exist()


__all__ = [
    "active_actor",
    "active_user",
    "active_user_in",
    "any_users",
    "authenticate",
    "change_user_status",
    "create_user",
    "delete_user",
    "get_user",
    "list_users",
    "update_user",
]
