"""Shipments (one per Saleor fulfillment with a tracking number), their checkpoints, the
shop's carrier accounts and the carriers' own webhooks (stored before they are applied)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import Base, TenantMixin, TimestampMixin, utcnow
from plugin.tracking.statuses import Status

StatusColumn = Enum(
    Status, native_enum=False, length=32, values_callable=lambda e: [s.value for s in e]
)


class Shipment(TenantMixin, TimestampMixin, Base):
    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("installation_id", "fulfillment_saleor_id"),
        Index("ix_shipments_installation_id_profile_id", "installation_id", "profile_id"),
        Index("ix_shipments_installation_id_order_saleor_id", "installation_id", "order_saleor_id"),
        # The polling schedule: the scheduler reads the due rows in time order.
        Index("ix_shipments_next_poll_at", "next_poll_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fulfillment_saleor_id: Mapped[str] = mapped_column(String(256))
    order_saleor_id: Mapped[str] = mapped_column(String(256))
    order_number: Mapped[str | None] = mapped_column(String(64))
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profiles.id", ondelete="SET NULL"))
    tracking_number: Mapped[str] = mapped_column(String(256))
    carrier: Mapped[str] = mapped_column(String(64))
    # How the carrier was chosen: staff, metadata, shipping_method, pattern or default.
    carrier_source: Mapped[str] = mapped_column(String(32))
    status: Mapped[Status] = mapped_column(StatusColumn, default=Status.PENDING)
    sub_status: Mapped[str | None] = mapped_column(String(64))
    carrier_status: Mapped[str | None] = mapped_column(String(128))
    carrier_text: Mapped[str | None] = mapped_column(String(1024))
    estimated_delivery: Mapped[datetime | None]
    pickup_point: Mapped[str | None] = mapped_column(String(1024))
    pickup_hours: Mapped[str | None] = mapped_column(String(512))
    destination_city: Mapped[str | None] = mapped_column(String(256))
    destination_country: Mapped[str | None] = mapped_column(String(2))
    shipped_at: Mapped[datetime]
    status_changed_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    # The newest checkpoint's time: an older push never overrides a newer status.
    last_event_at: Mapped[datetime | None]
    # Ever in Exception (delivery analytics: share of exceptions).
    had_exception: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled_at: Mapped[datetime | None]
    # Delivered when first seen: the customer needs no message about it.
    quiet: Mapped[bool] = mapped_column(Boolean, default=False)
    # None: not polled (final, cancelled or manual); else when the next poll is due.
    next_poll_at: Mapped[datetime | None]
    last_polled_at: Mapped[datetime | None]
    poll_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Staff alerts already written back to Saleor, by key: each goes out once.
    alerts: Mapped[dict[str, Any] | None]
    # Some alert above is not in Saleor yet (the tick re-drives these).
    alerts_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    # The fulfillment snapshot this shipment last followed (Saleor's issuedAt).
    source_updated_at: Mapped[datetime]


class Checkpoint(TenantMixin, Base):
    __tablename__ = "shipment_checkpoints"
    __table_args__ = (
        UniqueConstraint("shipment_id", "fingerprint"),
        Index("ix_shipment_checkpoints_shipment_id_occurred_at", "shipment_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime]
    status: Mapped[Status] = mapped_column(StatusColumn)
    sub_status: Mapped[str | None] = mapped_column(String(64))
    carrier_status: Mapped[str | None] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(String(1024), default="")
    location: Mapped[str | None] = mapped_column(String(512))
    # A carrier repeats its whole history on every poll: this keeps each checkpoint once.
    fingerprint: Mapped[str] = mapped_column(String(64))


class CarrierAccount(TenantMixin, TimestampMixin, Base):
    """A shop's credentials and limits for one carrier API."""

    __tablename__ = "tracking_carrier_accounts"
    __table_args__ = (UniqueConstraint("installation_id", "carrier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    carrier: Mapped[str] = mapped_column(String(64))
    base_url: Mapped[str] = mapped_column(String(2048))
    # JSON of the carrier's credentials, encrypted with SECRET_KEY (plugin.kit.crypto).
    credentials_encrypted: Mapped[str] = mapped_column(Text)
    # The unguessable part of this account's webhook URL (/api/tracking/webhooks/<key>).
    webhook_key: Mapped[str] = mapped_column(String(64), unique=True)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=4)
    requests_per_second: Mapped[float] = mapped_column(Float, default=10.0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # After a 429 or an outage: no request to this carrier before then.
    blocked_until: Mapped[datetime | None]


class WebhookStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class CarrierWebhook(TenantMixin, Base):
    """A verified carrier webhook, stored before it is applied; one row per event id."""

    __tablename__ = "tracking_webhooks"
    __table_args__ = (UniqueConstraint("installation_id", "carrier", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    carrier: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(256))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[WebhookStatus] = mapped_column(
        Enum(WebhookStatus, native_enum=False, length=16), default=WebhookStatus.PENDING
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]


class RateSlot(Base):
    """The next free request slot of one carrier account (epoch seconds), shared by
    every worker when there is no Redis (plugin.tracking.limits)."""

    __tablename__ = "tracking_rate_slots"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float)


class AlertOutbox(TenantMixin, Base):
    """A staff alert to write back to Saleor, stored in the transaction that raised it
    and re-driven until sent (a crash between the status write and the send loses
    nothing). A claim is a lease: a worker that died mid-send lets it expire, and the
    next one checks Saleor before writing again, so the note goes out at most once."""

    __tablename__ = "tracking_alert_outbox"
    __table_args__ = (
        UniqueConstraint("shipment_id", "key"),
        Index("ix_tracking_alert_outbox_unsent", "sent_at", "claimed_until"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(512))
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    # Nobody to tell any more (shop uninstalled, shipment gone) or Saleor said no for good.
    dropped_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
