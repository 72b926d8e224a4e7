"""importer: profiles whose figures an import still has to recompute; room for HOT updates

Revision ID: c5e4a7b9d1f3
Revises: b4d3f6a8c0e2
Create Date: 2026-11-30 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5e4a7b9d1f3"
down_revision: str | None = "b4d3f6a8c0e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # Room on each page for a profile's next version: an update that changes no
        # indexed column (names, field times, the city — what most order and checkout
        # folds change) then stays on its page (HOT) instead of touching all 14 indexes.
        op.execute("ALTER TABLE profiles SET (fillfactor = 80)")
    # Profiles an import touched whose figures are recomputed once, when the run ends.
    op.create_table(
        "import_stale_figures",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_import_stale_figures_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_import_stale_figures_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_import_stale_figures")),
    )
    with op.batch_alter_table("import_stale_figures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_import_stale_figures_installation_id"), ["installation_id"], unique=False
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE profiles RESET (fillfactor)")
    with op.batch_alter_table("import_stale_figures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_stale_figures_installation_id"))
    op.drop_table("import_stale_figures")
