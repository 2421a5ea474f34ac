"""change capture: PostgreSQL triggers record changes made by other programs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Rows inserted, updated or deleted outside bugstream (psql, another service) are recorded in
`captured_changes` by row triggers, and a NOTIFY (with no payload: NOTIFY stops at 8000
bytes, so only the fact travels) wakes the capture worker, which turns them into the same
events the API would write (services/capture.py). bugstream's own transactions set
`bugstream.origin = 'app'`, which the triggers skip: the API's events are not duplicated.
SQLite has no triggers here: change capture is PostgreSQL-only (docs/scaling.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CAPTURED_TABLES = ("users", "projects", "memberships", "bug_reports", "comments")

FUNCTION = """
CREATE OR REPLACE FUNCTION bugstream_capture_change() RETURNS trigger AS $$
BEGIN
  IF coalesce(current_setting('bugstream.origin', true), '') = 'app' THEN
    RETURN NULL;
  END IF;
  INSERT INTO captured_changes (txid, table_name, op, old_row, new_row, created_at)
  VALUES (
    txid_current(),
    TG_TABLE_NAME,
    TG_OP,
    CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
    CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
    now()
  );
  PERFORM pg_notify('bugstream_changes', '');
  RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "captured_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("table_name", sa.String(64), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("old_row", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")),
        sa.Column("new_row", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    for table in CAPTURED_TABLES:
        op.execute(
            f"CREATE TRIGGER bugstream_capture_{table} "
            f"AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION bugstream_capture_change()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in CAPTURED_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS bugstream_capture_{table} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS bugstream_capture_change()")
    op.drop_table("captured_changes")
