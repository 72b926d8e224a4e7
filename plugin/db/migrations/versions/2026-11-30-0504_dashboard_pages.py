"""segments: progress of a segment computed in chunks (done, total, started at)

Revision ID: a9c8e1f3b5d7
Revises: f8b7d0e2a4c6
Create Date: 2026-11-30 05:04:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import plugin.db.base

revision: str = "a9c8e1f3b5d7"
down_revision: str | None = "f8b7d0e2a4c6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without defaults: PostgreSQL adds them without rewriting the table.
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "recompute_started_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("recompute_done", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("recompute_total", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_column("recompute_total")
        batch_op.drop_column("recompute_done")
        batch_op.drop_column("recompute_started_at")
