"""The permission matrix (role x action), and the rules that use it.

A role grants an action either everywhere (`ANYWHERE`), only in projects the user is a member
of (`IN_MEMBER_PROJECT`), or only on things the user owns there (`OWN`: their own bug reports
and comments). Admins need no membership. The services enforce these rules; docs/api.md prints
the matrix, generated from `MATRIX` so the two cannot drift.
"""

from __future__ import annotations

from enum import StrEnum

from bugstream.domain.enums import Role


class Action(StrEnum):
    USER_LIST = "user.list"
    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"
    USER_CHANGE_ROLE = "user.change_role"
    USER_CHANGE_STATUS = "user.change_status"
    USER_DELETE = "user.delete"
    PROJECT_CREATE = "project.create"
    PROJECT_READ = "project.read"
    PROJECT_UPDATE = "project.update"
    PROJECT_DELETE = "project.delete"
    MEMBER_MANAGE = "member.manage"
    BUG_READ = "bug.read"
    BUG_CREATE = "bug.create"
    BUG_UPDATE = "bug.update"
    BUG_DELETE = "bug.delete"
    BUG_CHANGE_STATUS = "bug.change_status"
    BUG_ASSIGN = "bug.assign"
    COMMENT_CREATE = "comment.create"
    COMMENT_UPDATE = "comment.update"
    COMMENT_DELETE = "comment.delete"
    REMINDER_SEND = "reminder.send"


class Scope(StrEnum):
    """How far a grant reaches."""

    ANYWHERE = "anywhere"
    IN_MEMBER_PROJECT = "member"
    OWN = "own"


A, M, OWN = Scope.ANYWHERE, Scope.IN_MEMBER_PROJECT, Scope.OWN

_MANAGER: dict[Action, Scope] = {
    Action.PROJECT_CREATE: A,
    Action.PROJECT_READ: M,
    Action.PROJECT_UPDATE: M,
    Action.MEMBER_MANAGE: M,
    Action.BUG_READ: M,
    Action.BUG_CREATE: M,
    Action.BUG_UPDATE: M,
    Action.BUG_DELETE: M,
    Action.BUG_CHANGE_STATUS: M,
    Action.BUG_ASSIGN: M,
    Action.COMMENT_CREATE: M,
    Action.COMMENT_UPDATE: M,
    Action.COMMENT_DELETE: M,
    Action.REMINDER_SEND: M,
}
_DEVELOPER: dict[Action, Scope] = {
    Action.PROJECT_READ: M,
    Action.BUG_READ: M,
    Action.BUG_CREATE: M,
    Action.BUG_UPDATE: M,
    Action.BUG_CHANGE_STATUS: M,
    Action.BUG_ASSIGN: M,
    Action.COMMENT_CREATE: M,
    Action.COMMENT_UPDATE: OWN,
    Action.COMMENT_DELETE: OWN,
}
_REPORTER: dict[Action, Scope] = {
    Action.PROJECT_READ: M,
    Action.BUG_READ: M,
    Action.BUG_CREATE: M,
    Action.BUG_UPDATE: OWN,
    Action.COMMENT_CREATE: M,
    Action.COMMENT_UPDATE: OWN,
    Action.COMMENT_DELETE: OWN,
}
_VIEWER: dict[Action, Scope] = {
    Action.PROJECT_READ: M,
    Action.BUG_READ: M,
}

#: role -> action -> scope of the grant; an action missing from a role's row is denied.
MATRIX: dict[Role, dict[Action, Scope]] = {
    Role.ADMIN: dict.fromkeys(Action, A),
    Role.MANAGER: _MANAGER,
    Role.DEVELOPER: _DEVELOPER,
    Role.REPORTER: _REPORTER,
    Role.VIEWER: _VIEWER,
}


def allows(role: Role, action: Action, *, is_member: bool = False, is_owner: bool = False) -> bool:
    """Whether `role` may do `action` given membership of the project and ownership."""
    scope = MATRIX[role].get(action)
    if scope is None:
        return False
    if scope is Scope.ANYWHERE:
        return True
    if scope is Scope.IN_MEMBER_PROJECT:
        return is_member
    return is_member and is_owner


def sees_all_projects(role: Role) -> bool:
    """Admins see every project without being members."""
    return role is Role.ADMIN
