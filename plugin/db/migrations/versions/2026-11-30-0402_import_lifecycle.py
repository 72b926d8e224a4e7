"""import and lifecycle: import runs, retention

Revision ID: a3c2e5f7b9d1
Revises: f2b1d4e6a8c0
Create Date: 2026-11-30 04:02:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import plugin.db.base

revision: str = "a3c2e5f7b9d1"
down_revision: str | None = "f2b1d4e6a8c0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "import_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "QUEUED",
                "RUNNING",
                "DONE",
                "FAILED",
                "CANCELLED",
                name="importstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("requested_by", sa.String(length=256), nullable=False),
        sa.Column("resources", JSON, nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("busy_seconds", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_import_runs_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_runs")),
    )
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_import_runs_installation_id"), ["installation_id"], unique=False
        )
    op.create_table(
        "import_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("resource", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=256), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("occurred_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_import_failures_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["import_runs.id"],
            name=op.f("fk_import_failures_run_id_import_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_failures")),
    )
    with op.batch_alter_table("import_failures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_import_failures_installation_id"), ["installation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_import_failures_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("import_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_failures_run_id"))
        batch_op.drop_index(batch_op.f("ix_import_failures_installation_id"))
    op.drop_table("import_failures")
    with op.batch_alter_table("import_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_runs_installation_id"))
    op.drop_table("import_runs")
