"""segments: lighter membership writes (a redundant index and foreign key dropped)

Revision ID: f8b7d0e2a4c6
Revises: e7a6c9d1f3b5
Create Date: 2026-11-30 05:03:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f8b7d0e2a4c6"
down_revision: str | None = "e7a6c9d1f3b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # (segment_id, profile_id) is unique: its index already serves look-ups by segment.
    # A membership reaches its shop through its segment and its customer, whose deletion
    # cascades to it: the row's own key to `installations` only cost a check per insert.
    with op.batch_alter_table("segment_memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_memberships_segment_id")
        batch_op.drop_constraint(
            "fk_segment_memberships_installation_id_installations", type_="foreignkey"
        )


def downgrade() -> None:
    with op.batch_alter_table("segment_memberships", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_segment_memberships_installation_id_installations",
            "installations",
            ["installation_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index("ix_segment_memberships_segment_id", ["segment_id"], unique=False)
