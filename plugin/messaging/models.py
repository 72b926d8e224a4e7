"""Messaging tables: settings, templates, flows, runs, messages and topic opt-outs.

Runs and messages carry unique keys so that a trigger starts at most one run and a run's
step sends at most one message, whatever is retried or redelivered.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import Base, JSONType, Money, TenantMixin, TimestampMixin, utcnow


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    TELEGRAM = "telegram"


class RunStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"
    FAILED = "failed"
    HOLDOUT = "holdout"


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"  # waits for its time (pacing, retry back-off)
    SENDING = "sending"  # handed to the provider; never handed again (at most once)
    SENT = "sent"
    FAILED = "failed"  # permanent failure or out of attempts
    SKIPPED = "skipped"  # no consent, suppressed, no address


def _enum(kind: type[enum.StrEnum]) -> Enum:
    return Enum(kind, native_enum=False, length=16)


class MessagingSettings(TenantMixin, TimestampMixin, Base):
    """One shop's sender set-up, time zone, quiet hours and caps; also the flow cursor."""

    __tablename__ = "messaging_settings"
    __table_args__ = (UniqueConstraint("installation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_email: Mapped[str | None] = mapped_column(String(320))
    sender_name: Mapped[str | None] = mapped_column(String(256))
    smtp_url: Mapped[str | None] = mapped_column(String(1024))
    sms_gateway_url: Mapped[str | None] = mapped_column(String(1024))
    sms_account: Mapped[str | None] = mapped_column(String(256))
    sms_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    sms_sender: Mapped[str | None] = mapped_column(String(64))
    telegram_api_url: Mapped[str | None] = mapped_column(String(1024))
    telegram_token_encrypted: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    quiet_start_hour: Mapped[int | None] = mapped_column(Integer, default=21)
    quiet_end_hour: Mapped[int | None] = mapped_column(Integer, default=9)
    # {"email": {"16h": 1, "7d": 3}, ...}: marketing messages per window and channel.
    caps: Mapped[dict[str, Any] | None]
    max_delay_hours: Mapped[int] = mapped_column(Integer, default=72)
    attribution_days: Mapped[int] = mapped_column(Integer, default=5)
    # Timeline entries up to this id were read by the flows (see plugin/messaging/intake).
    timeline_cursor: Mapped[int] = mapped_column(Integer, default=0)
    presets_created_at: Mapped[datetime | None]
    time_triggers_at: Mapped[datetime | None]


class MessageTemplate(TenantMixin, TimestampMixin, Base):
    """Subject, HTML and text per locale ("" = the fallback), rendered in a sandbox."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("installation_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    # {"": {"subject": …, "html": …, "text": …}, "fr": {…}}
    contents: Mapped[dict[str, Any]]
    preset: Mapped[str | None] = mapped_column(String(64))


class Flow(TenantMixin, TimestampMixin, Base):
    """Trigger + steps + exit conditions + re-entry policy, stored as validated JSON."""

    __tablename__ = "message_flows"
    __table_args__ = (UniqueConstraint("installation_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    marketing: Mapped[bool] = mapped_column(Boolean, default=True)
    topic: Mapped[str] = mapped_column(String(64), default="offers")
    trigger: Mapped[dict[str, Any]]
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    exits: Mapped[dict[str, Any] | None]
    reentry: Mapped[str] = mapped_column(String(16), default="no_overlap")
    reentry_days: Mapped[int] = mapped_column(Integer, default=0)
    holdout_percent: Mapped[int] = mapped_column(Integer, default=0)
    preset: Mapped[str | None] = mapped_column(String(64))


class FlowRun(TenantMixin, Base):
    """One customer's way through a flow for one trigger instance."""

    __tablename__ = "message_flow_runs"
    __table_args__ = (
        UniqueConstraint("flow_id", "profile_id", "trigger_key"),
        Index("ix_message_flow_runs_status_next_at", "status", "next_at"),
        Index("ix_message_flow_runs_profile_id_flow_id", "profile_id", "flow_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("message_flows.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    trigger_key: Mapped[str] = mapped_column(String(256))
    trigger_data: Mapped[dict[str, Any] | None]
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus))
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime | None]
    # A tick hands a due run to a worker until then; afterwards another tick may again.
    claimed_until: Mapped[datetime | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(512))


class Message(TenantMixin, Base):
    """One message to one person. `idempotency_key` is inserted before the provider is
    called, so a retry, a redelivery or a crash never sends it twice."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("installation_id", "idempotency_key"),
        Index("ix_messages_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_messages_profile_id_created_at", "profile_id", "created_at"),
        Index("ix_messages_flow_id_step_index", "flow_id", "step_index"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(256))
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    flow_id: Mapped[int | None] = mapped_column(ForeignKey("message_flows.id", ondelete="SET NULL"))
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("message_flow_runs.id", ondelete="SET NULL")
    )
    step_index: Mapped[int | None] = mapped_column(Integer)
    variant: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    marketing: Mapped[bool] = mapped_column(Boolean, default=True)
    topic: Mapped[str] = mapped_column(String(64), default="offers")
    template_key: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(998))
    # What the template is rendered with (ids and small values, re-read at send time).
    variables: Mapped[dict[str, Any] | None]
    links: Mapped[list[str] | None] = mapped_column(JSONType)
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    postponed_reason: Mapped[str | None] = mapped_column(String(256))
    error: Mapped[str | None] = mapped_column(String(1024))
    provider_id: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # Just before its group went to the provider (a crash before it: safe to send again).
    handed_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    clicked_at: Mapped[datetime | None]
    converted_order_id: Mapped[int | None] = mapped_column(Integer)
    revenue: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))


class TopicOptOut(TenantMixin, Base):
    """A customer said no to one topic (reviews, offers …) on one channel."""

    __tablename__ = "message_topic_opt_outs"
    __table_args__ = (UniqueConstraint("profile_id", "channel", "topic"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    topic: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(256), default="")


class Undeliverable(TenantMixin, Base):
    """An address or number a provider refused for good (hard bounce): never tried again."""

    __tablename__ = "message_undeliverable"
    __table_args__ = (UniqueConstraint("installation_id", "channel", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
