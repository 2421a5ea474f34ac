"""Build test data through the services, so that it is exactly what users would make."""

from __future__ import annotations

import itertools

from bugstream.domain.enums import Role
from bugstream.domain.models import (
    BugAssign,
    BugCreate,
    BugReport,
    Comment,
    CommentCreate,
    MembershipAdd,
    Project,
    ProjectCreate,
    User,
    UserCreate,
)
from bugstream.services import bugs, comments, projects, users
from bugstream.services.context import Actor, ServiceContext

PASSWORD = "correct horse battery"


class Factory:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._seq = itertools.count(1)
        self._admin: Actor | None = None

    @staticmethod
    def actor(user: User) -> Actor:
        return Actor(user_id=user.id, role=user.role)

    async def user(self, role: Role = Role.DEVELOPER, name: str | None = None) -> User:
        n = next(self._seq)
        username = name or f"{role.value}{n}"
        data = UserCreate(
            username=username, email=f"{username}@example.com", password=PASSWORD, role=role
        )
        return (await users.create_user(self.ctx, None, data)).value

    async def admin(self) -> Actor:
        if self._admin is None:
            self._admin = self.actor(await self.user(Role.ADMIN))
        return self._admin

    async def project(self, *members: User, name: str | None = None) -> Project:
        admin = await self.admin()
        data = ProjectCreate(name=name or f"project {next(self._seq)}", description="test")
        project = (await projects.create_project(self.ctx, admin, data)).value
        for member in members:
            await projects.add_member(self.ctx, admin, project.id, MembershipAdd(user_id=member.id))
        return project

    async def bug(
        self, project: Project, reporter: User, *, assignee: User | None = None, title: str = "bug"
    ) -> BugReport:
        data = BugCreate(project_id=project.id, title=title, description="steps")
        bug = (await bugs.create_bug(self.ctx, self.actor(reporter), data)).value
        if assignee is not None:
            admin = await self.admin()
            bug = (
                await bugs.assign_bug(self.ctx, admin, bug.id, BugAssign(assignee_id=assignee.id))
            ).value
        return bug

    async def comment(self, bug: BugReport, author: User, content: str = "a comment") -> Comment:
        result = await comments.create_comment(
            self.ctx, self.actor(author), bug.id, CommentCreate(content=content)
        )
        return result.value
