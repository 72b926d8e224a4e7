"""import: drop the installation_id indexes that tables keyed by (installation_id, …) repeat

Orders, profiles, identities and timeline entries each have a unique key or indexes
leading with installation_id, which serve every per-shop filter; their own index on the
column only cost every row written (an import writes hundreds of thousands).

Revision ID: c3e5a7b9d1f2
Revises: a9c8e1f3b5d7
Create Date: 2026-11-30 05:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c3e5a7b9d1f2"
down_revision: str | None = "a9c8e1f3b5d7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("orders", "profiles", "identities", "timeline_entries")


def upgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_installation_id", table_name=table)


def downgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_installation_id", table, ["installation_id"])
