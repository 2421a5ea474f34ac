"""Who may see an event: the one rule behind /ws's replay filter and the REST history.

`Scope` (domain/catalog.py) says which kind of audience a type has; this applies it to one
reader's access (their id, whether they are an admin, the projects they belong to). The live
fan-out (gateway/hub.py) applies the same rule through its index of connected users.
"""

from __future__ import annotations

from collections.abc import Container
from typing import assert_never

from bugstream.domain.catalog import CATALOG, Scope
from bugstream.domain.events import Event


def may_see(user_id: int, admin: bool, projects: Container[int], event: Event) -> bool:
    """Whether a user with this access may see `event` (before any subscription narrows it)."""
    scope = CATALOG[event.type].scope
    if scope is Scope.PROJECT:
        return admin or event.project_id in projects
    if scope is Scope.PERSONAL:
        return event.user_id == user_id
    if scope is Scope.USER:
        return event.user_id == user_id or admin
    assert_never(scope)
