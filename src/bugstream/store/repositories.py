"""One repository per entity, with the queries that only that entity needs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bugstream.domain.enums import OPEN_BUG_STATUSES, Role, UserStatus
from bugstream.domain.models import BugReport, Comment, Membership, Notification, Project, User
from bugstream.store.repository import Repository
from bugstream.store.tables import (
    bug_reports,
    comments,
    memberships,
    notifications,
    projects,
    users,
)

_ROLE_AND_STATUS = select(users.c.role, users.c.status).where(users.c.id == bindparam("user_id"))
_PROJECT_EXISTS = select(projects.c.id).where(projects.c.id == bindparam("project_id"))


class UserRepository(Repository[User]):
    table = users
    model = User

    async def role_and_status(self, user_id: int) -> tuple[Role, UserStatus] | None:
        """What every authenticated request checks, without building the whole user."""
        row = (await self.conn.execute(_ROLE_AND_STATUS, {"user_id": user_id})).first()
        return None if row is None else (Role(row.role), UserStatus(row.status))

    async def get_credentials(self, username: str) -> tuple[User, str] | None:
        """The user and their password hash, for login."""
        row = (await self.conn.execute(select(users).where(users.c.username == username))).first()
        return None if row is None else (self._to_model(row), str(row.password_hash))

    async def find_taken(self, username: str | None, email: str | None) -> list[str]:
        """Which of `username` / `email` another user already has (case-insensitive)."""
        taken: list[str] = []
        for field, value in (("username", username), ("email", email)):
            if value is None:
                continue
            column = users.c[field]
            # Escape LIKE's wildcards: "a_c" must not match "abc" (usernames may contain "_").
            literal = value.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            found = await self.conn.execute(
                select(users.c.id).where(column.ilike(literal, escape="\\"))
            )
            if found.first() is not None:
                taken.append(field)
        return taken

    async def any_exist(self) -> bool:
        return (await self.conn.execute(select(users.c.id).limit(1))).first() is not None


class ProjectRepository(Repository[Project]):
    table = projects
    model = Project

    async def exists(self, project_id: int) -> bool:
        row = await self.conn.execute(_PROJECT_EXISTS, {"project_id": project_id})
        return row.first() is not None

    async def name_taken(self, name: str, *, except_id: int | None = None) -> bool:
        query = select(projects.c.id).where(projects.c.name == name)
        if except_id is not None:
            query = query.where(projects.c.id != except_id)
        return (await self.conn.execute(query)).first() is not None


_IS_MEMBER = select(memberships.c.user_id).where(
    memberships.c.project_id == bindparam("project_id"),
    memberships.c.user_id == bindparam("user_id"),
)


_PROJECT_IDS_OF = select(memberships.c.project_id).where(
    memberships.c.user_id == bindparam("user_id")
)


class MembershipRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def is_member(self, project_id: int, user_id: int) -> bool:
        row = await self.conn.execute(_IS_MEMBER, {"project_id": project_id, "user_id": user_id})
        return row.first() is not None

    async def add(self, project_id: int, user_id: int, at: datetime) -> Membership:
        await self.conn.execute(
            insert(memberships).values(project_id=project_id, user_id=user_id, created_at=at)
        )
        return Membership(project_id=project_id, user_id=user_id, created_at=at)

    async def remove(self, project_id: int, user_id: int) -> Membership | None:
        row = (
            await self.conn.execute(
                delete(memberships)
                .where(memberships.c.project_id == project_id, memberships.c.user_id == user_id)
                .returning(memberships)
            )
        ).first()
        return None if row is None else Membership.model_validate(row._mapping)

    async def members(self, project_id: int) -> list[User]:
        rows = await self.conn.execute(
            select(users)
            .join(memberships, memberships.c.user_id == users.c.id)
            .where(memberships.c.project_id == project_id)
            .order_by(users.c.id)
        )
        return [User.model_validate(r._mapping) for r in rows]

    async def project_ids_of(self, user_id: int) -> list[int]:
        rows = await self.conn.execute(_PROJECT_IDS_OF, {"user_id": user_id})
        return [int(r.project_id) for r in rows]

    async def memberships_of(self, user_id: int) -> list[Membership]:
        rows = await self.conn.execute(
            select(memberships)
            .where(memberships.c.user_id == user_id)
            .order_by(memberships.c.project_id)
        )
        return [Membership.model_validate(r._mapping) for r in rows]


class BugRepository(Repository[BugReport]):
    table = bug_reports
    model = BugReport

    async def assigned_to(self, user_id: int) -> list[BugReport]:
        rows = await self.conn.execute(
            select(bug_reports)
            .where(bug_reports.c.assignee_id == user_id)
            .order_by(bug_reports.c.id)
        )
        return [self._to_model(r) for r in rows]

    async def due_for_reminder(
        self, *, untouched_since: datetime, reminded_before: datetime, limit: int
    ) -> list[BugReport]:
        """Open, assigned bugs not updated since `untouched_since` whose last reminder (if
        any) is older than `reminded_before`."""
        rows = await self.conn.execute(
            select(bug_reports)
            .where(
                bug_reports.c.status.in_([s.value for s in OPEN_BUG_STATUSES]),
                bug_reports.c.assignee_id.is_not(None),
                bug_reports.c.updated_at < untouched_since,
                or_(
                    bug_reports.c.reminded_at.is_(None),
                    bug_reports.c.reminded_at < reminded_before,
                ),
            )
            .order_by(bug_reports.c.id)
            .limit(limit)
        )
        return [self._to_model(r) for r in rows]

    async def claim_reminder(
        self, bug_id: int, *, now: datetime, reminded_before: datetime
    ) -> bool:
        """Mark the bug reminded unless another instance did so within the period.

        The compare-and-set makes the reminder at-most-once per period across instances.
        """
        result = await self.conn.execute(
            update(bug_reports)
            .where(
                bug_reports.c.id == bug_id,
                or_(
                    bug_reports.c.reminded_at.is_(None),
                    bug_reports.c.reminded_at < reminded_before,
                ),
            )
            .values(reminded_at=now)
        )
        return bool(result.rowcount)


class CommentRepository(Repository[Comment]):
    table = comments
    model = Comment


class NotificationRepository(Repository[Notification]):
    table = notifications
    model = Notification

    async def mark_read(self, user_id: int, notification_ids: list[int] | None) -> list[int]:
        """Mark the user's unread notifications read (all of them when ids is None)."""
        conditions: list[Any] = [
            notifications.c.user_id == user_id,
            notifications.c.read.is_(False),
        ]
        if notification_ids is not None:
            conditions.append(notifications.c.id.in_(notification_ids))
        rows = await self.conn.execute(
            update(notifications)
            .where(and_(*conditions))
            .values(read=True)
            .returning(notifications.c.id)
        )
        return sorted(int(r.id) for r in rows)


class Repositories:
    """Every repository on one connection (usually an open transaction's)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.users = UserRepository(conn)
        self.projects = ProjectRepository(conn)
        self.members = MembershipRepository(conn)
        self.bugs = BugRepository(conn)
        self.comments = CommentRepository(conn)
        self.notifications = NotificationRepository(conn)
