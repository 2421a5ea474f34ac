"""Entities as the API and the event stream show them, and the inputs that change them.

Entity models are what REST returns and what event payloads carry: each holds every field the
spec lists for its event type (see `bugstream.domain.events.REQUIRED_PAYLOAD_FIELDS`). Input
models forbid unknown fields and carry the explicit limits from `bugstream.domain.text`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, EmailStr, Field, Strict

from bugstream.domain.enums import BugStatus, NotificationType, Priority, Role, UserStatus
from bugstream.domain.text import (
    EMAIL_MAX,
    EMAIL_NOT_RESERVED,
    CommentContent,
    Description,
    Password,
    ProjectDescription,
    ProjectName,
    Title,
    Username,
)

# Email: pydantic's check (email-validator) and the schema's format, with the one rule the format
# does not state as a pattern (domain.text.EMAIL_NOT_RESERVED).
Email = Annotated[EmailStr, Field(json_schema_extra={"pattern": EMAIL_NOT_RESERVED})]
T = TypeVar("T")


def _integral(value: object) -> object:
    """JSON has one number type: 2.0 is the integer 2 (JSON Schema's "integer" says so, and
    /openapi.json promises it); 2.5 stays a float and fails."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: The largest id: 2**53 - 1, JavaScript's `Number.MAX_SAFE_INTEGER`, so that every id survives
#: `JSON.parse` in a browser (and the schema's bounds are exact in any JSON parser's doubles).
#: The store's BIGINT keys hold far more; a larger id is a validation error, never a database
#: overflow.
MAX_ID = 2**53 - 1

# Strict: an id is a JSON integer, so `true` and "2" are refused (lax mode takes them as 1
# and 2); a number with a zero fraction is the same integer. Positive, at most MAX_ID.
# (The validator goes last: placed first, it hides the bounds from the JSON schema.)
EntityId = Annotated[int, Strict(), Field(ge=1, le=MAX_ID), BeforeValidator(_integral)]


class Entity(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    def to_payload(self) -> dict[str, Any]:
        """The JSON-ready form used in event payloads (times as ISO 8601 with `Z`)."""
        return self.model_dump(mode="json")


class User(Entity):
    id: EntityId
    username: str
    email: str
    role: Role
    status: UserStatus
    created_at: datetime
    updated_at: datetime


class Project(Entity):
    id: EntityId
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class Membership(Entity):
    project_id: EntityId
    user_id: EntityId
    created_at: datetime


class BugReport(Entity):
    id: EntityId
    title: str
    description: str
    status: BugStatus
    priority: Priority
    assignee_id: EntityId | None
    reporter_id: EntityId | None
    project_id: EntityId
    created_at: datetime
    updated_at: datetime


class Comment(Entity):
    id: EntityId
    bug_report_id: EntityId
    user_id: EntityId | None
    content: str
    created_at: datetime
    updated_at: datetime


class Notification(Entity):
    id: EntityId
    type: NotificationType
    user_id: EntityId
    bug_report_id: EntityId | None
    message: str
    read: bool
    created_at: datetime


class Page(BaseModel, Generic[T]):
    """One page of a list: `items`, the `total` matching, and the window asked for."""

    items: list[T]
    total: int
    limit: int
    offset: int


# ---- inputs -------------------------------------------------------------------------------


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserCreate(Input):
    username: Username
    email: Email = Field(max_length=EMAIL_MAX)
    password: Password
    role: Role = Role.REPORTER
    status: UserStatus = UserStatus.ACTIVE


class UserUpdate(Input):
    """Fields left out stay as they are. Only admins may change `role`."""

    username: Username | None = None
    email: Email | None = Field(default=None, max_length=EMAIL_MAX)
    password: Password | None = None
    role: Role | None = None


class UserStatusChange(Input):
    status: UserStatus


class ProjectCreate(Input):
    name: ProjectName
    description: ProjectDescription = ""


class ProjectUpdate(Input):
    name: ProjectName | None = None
    description: ProjectDescription | None = None


class MembershipAdd(Input):
    user_id: EntityId


class BugCreate(Input):
    project_id: EntityId
    title: Title
    description: Description = ""
    priority: Priority = Priority.MEDIUM
    assignee_id: EntityId | None = None


class BugUpdate(Input):
    """Title, description and priority; status and assignee have their own actions."""

    title: Title | None = None
    description: Description | None = None
    priority: Priority | None = None


class BugStatusChange(Input):
    status: BugStatus


class BugAssign(Input):
    assignee_id: EntityId


class CommentCreate(Input):
    content: CommentContent


class CommentUpdate(Input):
    content: CommentContent


class BugFilter(Input):
    project_id: EntityId | None = None
    status: BugStatus | None = None
    priority: Priority | None = None
    assignee_id: EntityId | None = None


class PageRequest(Input):
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0)
