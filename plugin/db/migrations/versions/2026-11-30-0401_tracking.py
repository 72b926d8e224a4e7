"""tracking: shipments, checkpoints, carrier accounts and carrier webhooks

Revision ID: f2b1d4e6a8c0
Revises: e1a0c3f5d7b9
Create Date: 2026-11-30 04:01:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import plugin.db.base

revision: str = "f2b1d4e6a8c0"
down_revision: str | None = "e1a0c3f5d7b9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracking_carrier_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=False),
        sa.Column("credentials_encrypted", sa.Text(), nullable=False),
        sa.Column("webhook_key", sa.String(length=64), nullable=False),
        sa.Column("max_concurrency", sa.Integer(), nullable=False),
        sa.Column("requests_per_second", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("blocked_until", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            plugin.db.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            plugin.db.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_tracking_carrier_accounts_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_carrier_accounts")),
        sa.UniqueConstraint(
            "installation_id",
            "carrier",
            name=op.f("uq_tracking_carrier_accounts_installation_id_carrier"),
        ),
        sa.UniqueConstraint("webhook_key", name=op.f("uq_tracking_carrier_accounts_webhook_key")),
    )

    with op.batch_alter_table("tracking_carrier_accounts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tracking_carrier_accounts_installation_id"),
            ["installation_id"],
            unique=False,
        )

    op.create_table(
        "tracking_webhooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "PENDING", "DONE", "FAILED", name="webhookstatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("processed_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_tracking_webhooks_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_webhooks")),
        sa.UniqueConstraint(
            "installation_id",
            "carrier",
            "event_id",
            name=op.f("uq_tracking_webhooks_installation_id_carrier_event_id"),
        ),
    )

    with op.batch_alter_table("tracking_webhooks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tracking_webhooks_installation_id"), ["installation_id"], unique=False
        )

    op.create_table(
        "shipments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fulfillment_saleor_id", sa.String(length=256), nullable=False),
        sa.Column("order_saleor_id", sa.String(length=256), nullable=False),
        sa.Column("order_number", sa.String(length=64), nullable=True),
        sa.Column("profile_id", sa.Integer(), nullable=True),
        sa.Column("tracking_number", sa.String(length=256), nullable=False),
        sa.Column("carrier", sa.String(length=64), nullable=False),
        sa.Column("carrier_source", sa.String(length=32), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "Pending",
                "InfoReceived",
                "InTransit",
                "OutForDelivery",
                "AttemptFail",
                "AvailableForPickup",
                "Delivered",
                "Exception",
                "Expired",
                name="status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("sub_status", sa.String(length=64), nullable=True),
        sa.Column("carrier_status", sa.String(length=128), nullable=True),
        sa.Column("carrier_text", sa.String(length=1024), nullable=True),
        sa.Column("estimated_delivery", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pickup_point", sa.String(length=1024), nullable=True),
        sa.Column("pickup_hours", sa.String(length=512), nullable=True),
        sa.Column("destination_city", sa.String(length=256), nullable=True),
        sa.Column("destination_country", sa.String(length=2), nullable=True),
        sa.Column("shipped_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status_changed_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("had_exception", sa.Boolean(), nullable=False),
        sa.Column("cancelled_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("quiet", sa.Boolean(), nullable=False),
        sa.Column("next_poll_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_polled_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("poll_failures", sa.Integer(), nullable=False),
        sa.Column("alerts_pending", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "alerts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("source_updated_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            plugin.db.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            plugin.db.base.UTCDateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_shipments_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_shipments_profile_id_profiles"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
        sa.UniqueConstraint(
            "installation_id",
            "fulfillment_saleor_id",
            name=op.f("uq_shipments_installation_id_fulfillment_saleor_id"),
        ),
    )

    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_shipments_installation_id"), ["installation_id"], unique=False
        )
        batch_op.create_index(
            "ix_shipments_installation_id_order_saleor_id",
            ["installation_id", "order_saleor_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_shipments_installation_id_profile_id",
            ["installation_id", "profile_id"],
            unique=False,
        )
        batch_op.create_index("ix_shipments_next_poll_at", ["next_poll_at"], unique=False)

    op.create_table(
        "shipment_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shipment_id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "Pending",
                "InfoReceived",
                "InTransit",
                "OutForDelivery",
                "AttemptFail",
                "AvailableForPickup",
                "Delivered",
                "Exception",
                "Expired",
                name="status",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("sub_status", sa.String(length=64), nullable=True),
        sa.Column("carrier_status", sa.String(length=128), nullable=True),
        sa.Column("message", sa.String(length=1024), nullable=False),
        sa.Column("location", sa.String(length=512), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_shipment_checkpoints_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.id"],
            name=op.f("fk_shipment_checkpoints_shipment_id_shipments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipment_checkpoints")),
        sa.UniqueConstraint(
            "shipment_id",
            "fingerprint",
            name=op.f("uq_shipment_checkpoints_shipment_id_fingerprint"),
        ),
    )

    with op.batch_alter_table("shipment_checkpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_shipment_checkpoints_installation_id"), ["installation_id"], unique=False
        )
        batch_op.create_index(
            "ix_shipment_checkpoints_shipment_id_occurred_at",
            ["shipment_id", "occurred_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("shipment_checkpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_shipment_checkpoints_shipment_id_occurred_at")
        batch_op.drop_index(batch_op.f("ix_shipment_checkpoints_installation_id"))

    op.drop_table("shipment_checkpoints")

    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index("ix_shipments_next_poll_at")
        batch_op.drop_index("ix_shipments_installation_id_profile_id")
        batch_op.drop_index("ix_shipments_installation_id_order_saleor_id")
        batch_op.drop_index(batch_op.f("ix_shipments_installation_id"))

    op.drop_table("shipments")

    with op.batch_alter_table("tracking_webhooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracking_webhooks_installation_id"))

    op.drop_table("tracking_webhooks")

    with op.batch_alter_table("tracking_carrier_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracking_carrier_accounts_installation_id"))

    op.drop_table("tracking_carrier_accounts")
