"""What the hub knows of a connected user: their role, name and projects, shared by all their
connections, and the two ways registering a connection can fail."""

from __future__ import annotations

from collections.abc import Iterable

from bugstream.domain.enums import Role
from bugstream.gateway.connection import Connection


class SnapshotTooOld(Exception):
    """The access log no longer reaches back to the snapshot: load a fresh one."""


class AccessRevoked(Exception):
    """The user was deleted or deactivated after their snapshot was taken."""


class UserAccess:
    """A connected user's name, role and projects, shared by their connections."""

    __slots__ = ("connections", "projects", "role", "username")

    def __init__(self, role: Role, projects: Iterable[int], username: str) -> None:
        self.role = role
        self.projects = set(projects)
        self.username = username
        self.connections: list[Connection] = []
