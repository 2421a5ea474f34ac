"""Who acts, what an action needs, and what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from bugstream.domain.enums import Role
from bugstream.domain.events import Event
from bugstream.store.database import Database
from bugstream.store.types import utcnow

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated user performing an action, with their *current* role."""

    user_id: int
    role: Role


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """The entity an action produced, and the events it committed (in event-id order)."""

    value: T
    events: tuple[Event, ...] = ()


class PasswordHashing(Protocol):
    """How services hash and check passwords (implemented by `bugstream.auth.passwords`).


    Both are async: a deliberately slow hash must not stall the event loop.
    """

    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """What every action needs: the database, password hashing, a clock (UTC), and policy."""

    db: Database
    passwords: PasswordHashing
    clock: Callable[[], datetime] = field(default=utcnow)
    #: How long an open, assigned bug may sit untouched before its assignee is reminded.
    reminder_age: timedelta = timedelta(days=3)
