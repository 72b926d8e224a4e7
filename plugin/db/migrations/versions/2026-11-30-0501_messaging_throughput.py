"""messaging: when each message of a batch was handed to its provider

Revision ID: d6f5b8c0e2a4
Revises: c5e4a7b9d1f3
Create Date: 2026-11-30 05:01:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import plugin.db.base

revision: str = "d6f5b8c0e2a4"
down_revision: str | None = "c5e4a7b9d1f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Set just before a message's group goes to the provider: after a crash, a SENDING
    # message without it was never handed over and is queued again, not given up.
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("handed_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("handed_at")
