"""analytics rollups: funnel hours and customer months

Also indexes checkouts by their order, to find the funnel hour an order fold changes.

Revision ID: d2b4f1c8e391
Revises: c1a9e0b7d214
Create Date: 2026-11-30 02:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import plugin.db.base

revision: str = "d2b4f1c8e391"
down_revision: str | None = "c1a9e0b7d214"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _installation(table: str) -> tuple[sa.Column[int], sa.ForeignKeyConstraint]:
    return (
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f(f"fk_{table}_installation_id_installations"),
            ondelete="CASCADE",
        ),
    )


def upgrade() -> None:
    with op.batch_alter_table("checkouts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_checkouts_installation_id_order_saleor_id",
            ["installation_id", "order_saleor_id"],
            unique=False,
        )

    op.create_table(
        "analytics_funnel_hourly",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=256), nullable=True),
        sa.Column("source", sa.String(length=256), nullable=True),
        sa.Column("early_order_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("emailed", sa.Integer(), nullable=False),
        sa.Column("contact", sa.Integer(), nullable=False),
        sa.Column("ordered", sa.Integer(), nullable=False),
        sa.Column("paid", sa.Integer(), nullable=False),
        sa.Column("fulfilled", sa.Integer(), nullable=False),
        *_installation("analytics_funnel_hourly"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_funnel_hourly")),
    )
    with op.batch_alter_table("analytics_funnel_hourly", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analytics_funnel_hourly_installation_id"),
            ["installation_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_analytics_funnel_hourly_installation_id_hour",
            ["installation_id", "hour"],
            unique=False,
        )

    op.create_table(
        "analytics_customer_months",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("cohort", sa.Integer(), nullable=True),
        sa.Column("first_order_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("channel", sa.String(length=256), nullable=True),
        sa.Column("source", sa.String(length=256), nullable=True),
        sa.Column("first_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        *_installation("analytics_customer_months"),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_analytics_customer_months_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", "month", name=op.f("pk_analytics_customer_months")),
    )
    with op.batch_alter_table("analytics_customer_months", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analytics_customer_months_installation_id"),
            ["installation_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_analytics_customer_months_installation_id_first_order_at",
            ["installation_id", "first_order_at"],
            unique=False,
        )

    op.create_table(
        "analytics_rollup_state",
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.Column("rebuilt_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_analytics_rollup_state_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("installation_id", name=op.f("pk_analytics_rollup_state")),
    )


def downgrade() -> None:
    op.drop_table("analytics_rollup_state")
    with op.batch_alter_table("analytics_customer_months", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_customer_months_installation_id_first_order_at")
        batch_op.drop_index(batch_op.f("ix_analytics_customer_months_installation_id"))
    op.drop_table("analytics_customer_months")
    with op.batch_alter_table("analytics_funnel_hourly", schema=None) as batch_op:
        batch_op.drop_index("ix_analytics_funnel_hourly_installation_id_hour")
        batch_op.drop_index(batch_op.f("ix_analytics_funnel_hourly_installation_id"))
    op.drop_table("analytics_funnel_hourly")
    with op.batch_alter_table("checkouts", schema=None) as batch_op:
        batch_op.drop_index("ix_checkouts_installation_id_order_saleor_id")
