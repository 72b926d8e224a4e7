"""api indexes: the customer list's sort orders

Revision ID: c1a9e0b7d214
Revises: 5a1c0e7d2f90
Create Date: 2026-11-30 02:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c1a9e0b7d214"
down_revision: str | None = "5a1c0e7d2f90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (installation_id, column, id): a page of customers sorted by the column, either way, is
# an index range scan (plugin/api/pagination.py SortKey.parts).
SORT_COLUMNS = (
    "last_order_at",
    "first_order_at",
    "total_spent",
    "orders_count",
    "score",
    "email",
)


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.create_index("ix_profiles_installation_id_id", ["installation_id", "id"])
        for column in SORT_COLUMNS:
            batch_op.create_index(
                f"ix_profiles_installation_id_{column}_id", ["installation_id", column, "id"]
            )


def downgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        for column in reversed(SORT_COLUMNS):
            batch_op.drop_index(f"ix_profiles_installation_id_{column}_id")
        batch_op.drop_index("ix_profiles_installation_id_id")
