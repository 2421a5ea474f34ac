"""The relational schema. Alembic migrations (`store/migrations`) create exactly this.

Deletes cascade down the ownership tree (project -> bug reports -> comments); references to a
deleted user become NULL so history survives. The outbox holds every event ever committed,
keyed by a monotonic id (SQLite AUTOINCREMENT never reuses an id; PostgreSQL uses an identity
column allocated under a lock, see `store/outbox.py`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from bugstream.store.types import UTCDateTime, json_type

# Explicit constraint names keep migrations identical across databases.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only has 64-bit integer keys as INTEGER PRIMARY KEY; BigInteger elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(32), nullable=False, unique=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

projects = Table(
    "projects",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

memberships = Table(
    "memberships",
    metadata,
    Column("project_id", Id, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_memberships_user_id", "user_id"),
)

bug_reports = Table(
    "bug_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("project_id", Id, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("assignee_id", Id, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("reporter_id", Id, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # When the last reminder went out; not part of the bug's public state.
    Column("reminded_at", UTCDateTime(), nullable=True),
    Index("ix_bug_reports_project_status", "project_id", "status"),
    Index("ix_bug_reports_assignee_id", "assignee_id"),
    sqlite_autoincrement=True,
)

comments = Table(
    "comments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bug_report_id", Id, ForeignKey("bug_reports.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    Column("content", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_comments_bug_report_id", "bug_report_id"),
    sqlite_autoincrement=True,
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("type", String(32), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("bug_report_id", Id, ForeignKey("bug_reports.id", ondelete="SET NULL"), nullable=True),
    Column("message", String(500), nullable=False),
    Column("read", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_notifications_user_id_read", "user_id", "read"),
    sqlite_autoincrement=True,
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("type", String(32), nullable=False),
    Column("event", String(32), nullable=False),
    Column("payload", json_type(), nullable=False),
    # Routing keys: which project / user the event concerns (see domain.events.Event).
    Column("project_id", Id, nullable=True),
    Column("user_id", Id, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

# Changes made by other programs, recorded by PostgreSQL triggers (migration 0002) until the
# capture worker turns them into events.
captured_changes = Table(
    "captured_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("txid", BigInteger, nullable=False),
    Column("table_name", String(64), nullable=False),
    Column("op", String(8), nullable=False),
    Column("old_row", json_type()),
    Column("new_row", json_type()),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
