"""api tokens and notes

Revision ID: 5a1c0e7d2f90
Revises: b78f127f4d83
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import plugin.db.base

revision: str = "5a1c0e7d2f90"
down_revision: str | None = "b78f127f4d83"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("created_by_user_id", sa.String(length=256), nullable=True),
        sa.Column("created_by_email", sa.String(length=320), nullable=True),
        sa.Column("created_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_api_tokens_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_tokens_installation_id"), ["installation_id"], unique=False
        )

    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author_user_id", sa.String(length=256), nullable=True),
        sa.Column("author_email", sa.String(length=320), nullable=True),
        sa.Column("author_token_id", sa.Integer(), nullable=True),
        sa.Column("created_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_token_id"],
            ["api_tokens.id"],
            name=op.f("fk_notes_author_token_id_api_tokens"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_notes_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_notes_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
    )
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notes_installation_id"), ["installation_id"], unique=False
        )
        batch_op.create_index(
            "ix_notes_profile_id_created_at", ["profile_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_index("ix_notes_profile_id_created_at")
        batch_op.drop_index(batch_op.f("ix_notes_installation_id"))
    op.drop_table("notes")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_installation_id"))
    op.drop_table("api_tokens")
