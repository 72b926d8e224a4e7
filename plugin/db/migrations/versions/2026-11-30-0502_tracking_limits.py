"""tracking: shared carrier limits and re-driven alerts

Revision ID: e7a6c9d1f3b5
Revises: d6f5b8c0e2a4
Create Date: 2026-11-30 05:02:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import plugin.db.base

revision: str = "e7a6c9d1f3b5"
down_revision: str | None = "d6f5b8c0e2a4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracking_rate_slots",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_tracking_rate_slots")),
    )
    op.create_table(
        "tracking_alert_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shipment_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dropped_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_tracking_alert_outbox_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.id"],
            name=op.f("fk_tracking_alert_outbox_shipment_id_shipments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_alert_outbox")),
        sa.UniqueConstraint(
            "shipment_id", "key", name=op.f("uq_tracking_alert_outbox_shipment_id_key")
        ),
    )
    with op.batch_alter_table("tracking_alert_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tracking_alert_outbox_installation_id"),
            ["installation_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_tracking_alert_outbox_unsent", ["sent_at", "claimed_until"], unique=False
        )
    # Alerts raised before the outbox existed: one row each (the unsent ones are sent).
    shipments = sa.table(
        "shipments",
        sa.column("id", sa.Integer()),
        sa.column("installation_id", sa.Integer()),
        sa.column("alerts", plugin.db.base.JSONType),
        sa.column("alerts_pending", sa.Boolean()),
    )
    outbox = sa.table(
        "tracking_alert_outbox",
        sa.column("installation_id", sa.Integer()),
        sa.column("shipment_id", sa.Integer()),
        sa.column("key", sa.String()),
        sa.column("message", sa.Text()),
        sa.column("raised_at", plugin.db.base.UTCDateTime(timezone=True)),
        sa.column("attempts", sa.Integer()),
        sa.column("sent_at", plugin.db.base.UTCDateTime(timezone=True)),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(shipments.c.id, shipments.c.installation_id, shipments.c.alerts).where(
            shipments.c.alerts.is_not(None)
        )
    )
    moved = []
    now = datetime.now(UTC)
    for shipment_id, installation_id, alerts in rows:
        for key, alert in (alerts or {}).items():
            if isinstance(alert, dict):
                moved.append(
                    {
                        "installation_id": installation_id,
                        "shipment_id": shipment_id,
                        "key": key[:512],
                        "message": str(alert.get("message") or key),
                        "raised_at": now,
                        "attempts": 0,
                        "sent_at": now if alert.get("sent_at") else None,
                    }
                )
    for row in moved:
        connection.execute(sa.insert(outbox).values(**row))


def downgrade() -> None:
    with op.batch_alter_table("tracking_alert_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_tracking_alert_outbox_unsent")
        batch_op.drop_index(batch_op.f("ix_tracking_alert_outbox_installation_id"))
    op.drop_table("tracking_alert_outbox")
    op.drop_table("tracking_rate_slots")
