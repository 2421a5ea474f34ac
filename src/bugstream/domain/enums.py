"""The closed vocabularies of the domain."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A user's global role; what each may do is in `bugstream.domain.permissions`."""

    ADMIN = "admin"
    MANAGER = "manager"
    DEVELOPER = "developer"
    REPORTER = "reporter"
    VIEWER = "viewer"


class UserStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    SUSPENDED = "suspended"


class BugStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


#: Statuses in which a bug still needs work (reminders are sent only for these).
OPEN_BUG_STATUSES: frozenset[BugStatus] = frozenset(
    {BugStatus.OPEN, BugStatus.IN_PROGRESS, BugStatus.REOPENED}
)


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class NotificationType(StrEnum):
    BUG_ASSIGNED = "bug_assigned"
    COMMENT_ADDED = "comment_added"
    STATUS_CHANGED = "status_changed"
    REMINDER_SENT = "reminder_sent"
