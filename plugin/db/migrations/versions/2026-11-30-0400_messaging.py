"""messaging: flows, runs, messages, templates, consent

Revision ID: e1a0c3f5d7b9
Revises: d2b4f1c8e391
Create Date: 2026-11-30 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import plugin.db.base

revision: str = "e1a0c3f5d7b9"
down_revision: str | None = "d2b4f1c8e391"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_flows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("marketing", sa.Boolean(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column(
            "trigger",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "steps",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "exits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("reentry", sa.String(length=16), nullable=False),
        sa.Column("reentry_days", sa.Integer(), nullable=False),
        sa.Column("holdout_percent", sa.Integer(), nullable=False),
        sa.Column("preset", sa.String(length=64), nullable=True),
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
            name=op.f("fk_message_flows_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_flows")),
        sa.UniqueConstraint(
            "installation_id", "key", name=op.f("uq_message_flows_installation_id_key")
        ),
    )
    with op.batch_alter_table("message_flows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_flows_installation_id"), ["installation_id"], unique=False
        )

    op.create_table(
        "message_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("EMAIL", "SMS", "TELEGRAM", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "contents",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("preset", sa.String(length=64), nullable=True),
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
            name=op.f("fk_message_templates_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint(
            "installation_id", "key", name=op.f("uq_message_templates_installation_id_key")
        ),
    )
    with op.batch_alter_table("message_templates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_templates_installation_id"), ["installation_id"], unique=False
        )

    op.create_table(
        "message_undeliverable",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("EMAIL", "SMS", "TELEGRAM", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=1024), nullable=False),
        sa.Column("created_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_message_undeliverable_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_undeliverable")),
        sa.UniqueConstraint(
            "installation_id",
            "channel",
            "address",
            name=op.f("uq_message_undeliverable_installation_id_channel_address"),
        ),
    )
    with op.batch_alter_table("message_undeliverable", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_undeliverable_installation_id"),
            ["installation_id"],
            unique=False,
        )

    op.create_table(
        "messaging_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_email", sa.String(length=320), nullable=True),
        sa.Column("sender_name", sa.String(length=256), nullable=True),
        sa.Column("smtp_url", sa.String(length=1024), nullable=True),
        sa.Column("sms_gateway_url", sa.String(length=1024), nullable=True),
        sa.Column("sms_account", sa.String(length=256), nullable=True),
        sa.Column("sms_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("sms_sender", sa.String(length=64), nullable=True),
        sa.Column("telegram_api_url", sa.String(length=1024), nullable=True),
        sa.Column("telegram_token_encrypted", sa.Text(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("quiet_start_hour", sa.Integer(), nullable=True),
        sa.Column("quiet_end_hour", sa.Integer(), nullable=True),
        sa.Column(
            "caps",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("max_delay_hours", sa.Integer(), nullable=False),
        sa.Column("attribution_days", sa.Integer(), nullable=False),
        sa.Column("timeline_cursor", sa.Integer(), nullable=False),
        sa.Column("presets_created_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("time_triggers_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
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
            name=op.f("fk_messaging_settings_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messaging_settings")),
        sa.UniqueConstraint("installation_id", name=op.f("uq_messaging_settings_installation_id")),
    )
    with op.batch_alter_table("messaging_settings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_messaging_settings_installation_id"), ["installation_id"], unique=False
        )

    op.create_table(
        "message_flow_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("trigger_key", sa.String(length=256), nullable=False),
        sa.Column(
            "trigger_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "ACTIVE",
                "COMPLETED",
                "EXITED",
                "FAILED",
                "HOLDOUT",
                name="runstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("next_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=512), nullable=True),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["message_flows.id"],
            name=op.f("fk_message_flow_runs_flow_id_message_flows"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_message_flow_runs_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_message_flow_runs_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_flow_runs")),
        sa.UniqueConstraint(
            "flow_id",
            "profile_id",
            "trigger_key",
            name=op.f("uq_message_flow_runs_flow_id_profile_id_trigger_key"),
        ),
    )
    with op.batch_alter_table("message_flow_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_flow_runs_installation_id"), ["installation_id"], unique=False
        )
        batch_op.create_index(
            "ix_message_flow_runs_profile_id_flow_id", ["profile_id", "flow_id"], unique=False
        )
        batch_op.create_index(
            "ix_message_flow_runs_status_next_at", ["status", "next_at"], unique=False
        )

    op.create_table(
        "message_topic_opt_outs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum("EMAIL", "SMS", "TELEGRAM", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("created_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_message_topic_opt_outs_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_message_topic_opt_outs_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_topic_opt_outs")),
        sa.UniqueConstraint(
            "profile_id",
            "channel",
            "topic",
            name=op.f("uq_message_topic_opt_outs_profile_id_channel_topic"),
        ),
    )
    with op.batch_alter_table("message_topic_opt_outs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_message_topic_opt_outs_installation_id"),
            ["installation_id"],
            unique=False,
        )

    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=256), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("step_index", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        sa.Column(
            "channel",
            sa.Enum("EMAIL", "SMS", "TELEGRAM", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("marketing", sa.Boolean(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("template_key", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.String(length=998), nullable=True),
        sa.Column(
            "variables",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "links",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "QUEUED",
                "SENDING",
                "SENT",
                "FAILED",
                "SKIPPED",
                name="messagestatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("postponed_reason", sa.String(length=256), nullable=True),
        sa.Column("error", sa.String(length=1024), nullable=True),
        sa.Column("provider_id", sa.String(length=256), nullable=True),
        sa.Column("created_at", plugin.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("opened_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("clicked_at", plugin.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("converted_order_id", sa.Integer(), nullable=True),
        sa.Column("revenue", sa.Numeric(precision=18, scale=4), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("installation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"],
            ["message_flows.id"],
            name=op.f("fk_messages_flow_id_message_flows"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["installations.id"],
            name=op.f("fk_messages_installation_id_installations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_messages_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["message_flow_runs.id"],
            name=op.f("fk_messages_run_id_message_flow_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint(
            "installation_id",
            "idempotency_key",
            name=op.f("uq_messages_installation_id_idempotency_key"),
        ),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_flow_id_step_index", ["flow_id", "step_index"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_messages_installation_id"), ["installation_id"], unique=False
        )
        batch_op.create_index(
            "ix_messages_profile_id_created_at", ["profile_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_messages_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_status_next_attempt_at")
        batch_op.drop_index("ix_messages_profile_id_created_at")
        batch_op.drop_index(batch_op.f("ix_messages_installation_id"))
        batch_op.drop_index("ix_messages_flow_id_step_index")

    op.drop_table("messages")
    with op.batch_alter_table("message_topic_opt_outs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_topic_opt_outs_installation_id"))

    op.drop_table("message_topic_opt_outs")
    with op.batch_alter_table("message_flow_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_message_flow_runs_status_next_at")
        batch_op.drop_index("ix_message_flow_runs_profile_id_flow_id")
        batch_op.drop_index(batch_op.f("ix_message_flow_runs_installation_id"))

    op.drop_table("message_flow_runs")
    with op.batch_alter_table("messaging_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messaging_settings_installation_id"))

    op.drop_table("messaging_settings")
    with op.batch_alter_table("message_undeliverable", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_undeliverable_installation_id"))

    op.drop_table("message_undeliverable")
    with op.batch_alter_table("message_templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_templates_installation_id"))

    op.drop_table("message_templates")
    with op.batch_alter_table("message_flows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_flows_installation_id"))

    op.drop_table("message_flows")
