"""Orders with lines, checkout snapshots (Saleor deletes checkouts) and fulfillments."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import (
    ZERO,
    Base,
    JSONType,
    KeyedTenantMixin,
    Money,
    TenantMixin,
    TimestampMixin,
)


class SourceMixin:
    """Where the buyer came from, read from the object's metadata (utm_* and referrer)."""

    utm_source: Mapped[str | None] = mapped_column(String(256))
    utm_medium: Mapped[str | None] = mapped_column(String(256))
    utm_campaign: Mapped[str | None] = mapped_column(String(256))
    utm_term: Mapped[str | None] = mapped_column(String(256))
    utm_content: Mapped[str | None] = mapped_column(String(256))
    referrer: Mapped[str | None] = mapped_column(String(2048))


class Order(KeyedTenantMixin, TimestampMixin, SourceMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("installation_id", "saleor_id"),
        Index("ix_orders_installation_id_placed_at", "installation_id", "placed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    saleor_id: Mapped[str] = mapped_column(String(256))
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    number: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    origin: Mapped[str | None] = mapped_column(String(32))
    charge_status: Mapped[str | None] = mapped_column(String(32))
    authorize_status: Mapped[str | None] = mapped_column(String(32))
    is_paid: Mapped[bool] = mapped_column(Boolean, default=False)
    channel_slug: Mapped[str | None] = mapped_column(String(256))
    currency: Mapped[str] = mapped_column(String(3))
    total_gross: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    total_net: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    total_tax: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    subtotal_gross: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    shipping_gross: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    total_charged: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    total_refunded: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    voucher_code: Mapped[str | None] = mapped_column(String(256))
    user_email: Mapped[str | None] = mapped_column(String(320))
    saleor_user_id: Mapped[str | None] = mapped_column(String(256))
    checkout_saleor_id: Mapped[str | None] = mapped_column(String(256), index=True)
    language: Mapped[str | None] = mapped_column(String(16))
    shipping_city: Mapped[str | None] = mapped_column(String(256))
    shipping_country: Mapped[str | None] = mapped_column(String(2))
    saleor_metadata: Mapped[dict[str, Any] | None]
    placed_at: Mapped[datetime]
    source_updated_at: Mapped[datetime]


class OrderLine(TenantMixin, Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    saleor_id: Mapped[str] = mapped_column(String(256))
    product_id: Mapped[str | None] = mapped_column(String(256), index=True)
    product_name: Mapped[str] = mapped_column(String(512), default="")
    variant_id: Mapped[str | None] = mapped_column(String(256))
    variant_name: Mapped[str | None] = mapped_column(String(512))
    sku: Mapped[str | None] = mapped_column(String(256))
    category_id: Mapped[str | None] = mapped_column(String(256), index=True)
    category_name: Mapped[str | None] = mapped_column(String(512))
    category_slug: Mapped[str | None] = mapped_column(String(512))
    product_type: Mapped[str | None] = mapped_column(String(512))
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    quantity_fulfilled: Mapped[int] = mapped_column(Integer, default=0)
    unit_price_gross: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    total_price_gross: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    currency: Mapped[str] = mapped_column(String(3))


class CheckoutState(enum.StrEnum):
    OPEN = "open"
    CONVERTED = "converted"


class Checkout(TenantMixin, TimestampMixin, SourceMixin, Base):
    __tablename__ = "checkouts"
    __table_args__ = (
        UniqueConstraint("installation_id", "saleor_id"),
        Index("ix_checkouts_installation_id_started_at", "installation_id", "started_at"),
        # The checkout of an order (the analytics rollups recompute its funnel hour).
        Index("ix_checkouts_installation_id_order_saleor_id", "installation_id", "order_saleor_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    saleor_id: Mapped[str] = mapped_column(String(256))
    token: Mapped[str | None] = mapped_column(String(64), index=True)
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str | None] = mapped_column(String(320))
    saleor_user_id: Mapped[str | None] = mapped_column(String(256))
    channel_slug: Mapped[str | None] = mapped_column(String(256))
    currency: Mapped[str] = mapped_column(String(3))
    total_gross: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    subtotal_gross: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    lines_count: Mapped[int] = mapped_column(Integer, default=0)
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    charge_status: Mapped[str | None] = mapped_column(String(32))
    voucher_code: Mapped[str | None] = mapped_column(String(256))
    language: Mapped[str | None] = mapped_column(String(16))
    saleor_metadata: Mapped[dict[str, Any] | None]
    state: Mapped[CheckoutState] = mapped_column(
        Enum(CheckoutState, native_enum=False, length=16), default=CheckoutState.OPEN
    )
    order_saleor_id: Mapped[str | None] = mapped_column(String(256))
    started_at: Mapped[datetime]
    source_updated_at: Mapped[datetime]


class CheckoutLine(TenantMixin, Base):
    __tablename__ = "checkout_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkout_id: Mapped[int] = mapped_column(
        ForeignKey("checkouts.id", ondelete="CASCADE"), index=True
    )
    saleor_id: Mapped[str] = mapped_column(String(256))
    product_id: Mapped[str | None] = mapped_column(String(256))
    product_name: Mapped[str] = mapped_column(String(512), default="")
    variant_id: Mapped[str | None] = mapped_column(String(256))
    variant_name: Mapped[str | None] = mapped_column(String(512))
    sku: Mapped[str | None] = mapped_column(String(256))
    category_id: Mapped[str | None] = mapped_column(String(256))
    category_name: Mapped[str | None] = mapped_column(String(512))
    quantity: Mapped[int] = mapped_column(Integer, default=0)
    total_price_gross: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    currency: Mapped[str] = mapped_column(String(3))


class Fulfillment(TenantMixin, TimestampMixin, Base):
    __tablename__ = "fulfillments"
    __table_args__ = (UniqueConstraint("installation_id", "saleor_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    saleor_id: Mapped[str] = mapped_column(String(256))
    order_saleor_id: Mapped[str] = mapped_column(String(256), index=True)
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    fulfillment_order: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    tracking_number: Mapped[str] = mapped_column(String(256), default="")
    warehouse: Mapped[str | None] = mapped_column(String(512))
    lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    saleor_metadata: Mapped[dict[str, Any] | None]
    fulfilled_at: Mapped[datetime]
    # Fulfillments have no updatedAt in Saleor: the event's issuedAt orders the snapshots.
    source_updated_at: Mapped[datetime]
