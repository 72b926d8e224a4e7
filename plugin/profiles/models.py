"""Profiles, the identities that point at them, and their per-currency totals."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
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

from plugin.db.base import (
    ZERO,
    Base,
    JSONType,
    KeyedTenantMixin,
    Money,
    TenantMixin,
    TimestampMixin,
)


class IdentityKind(enum.StrEnum):
    SALEOR_USER = "saleor_user"
    EMAIL = "email"
    PHONE = "phone"


class ConsentState(enum.StrEnum):
    GRANTED = "granted"
    DENIED = "denied"


# The customer list's sort orders (plugin/api/queries/customers.py): one index each, read
# forward or backward, so a page is an index range scan whatever the shop's size.
PROFILE_SORT_COLUMNS = (
    "id",
    "last_order_at",
    "first_order_at",
    "total_spent",
    "orders_count",
    "score",
    "email",
)


class Profile(KeyedTenantMixin, TimestampMixin, Base):
    __tablename__ = "profiles"
    __table_args__ = tuple(
        Index(f"ix_profiles_installation_id_{column}_id", "installation_id", column, "id")
        if column != "id"
        else Index("ix_profiles_installation_id_id", "installation_id", "id")
        for column in PROFILE_SORT_COLUMNS
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    saleor_user_id: Mapped[str | None] = mapped_column(String(256), index=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    first_name: Mapped[str | None] = mapped_column(String(256))
    last_name: Mapped[str | None] = mapped_column(String(256))
    language: Mapped[str | None] = mapped_column(String(16))
    city: Mapped[str | None] = mapped_column(String(256))
    country: Mapped[str | None] = mapped_column(String(2))
    note: Mapped[str | None] = mapped_column(Text)
    external_reference: Mapped[str | None] = mapped_column(String(256))
    is_active: Mapped[bool | None] = mapped_column(Boolean)
    is_confirmed: Mapped[bool | None] = mapped_column(Boolean)
    date_joined: Mapped[datetime | None]
    last_login: Mapped[datetime | None]
    addresses: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    saleor_metadata: Mapped[dict[str, Any] | None]

    # "Source time wins", per field: {field: Saleor timestamp of the value it holds}.
    field_times: Mapped[dict[str, Any] | None]
    customer_updated_at: Mapped[datetime | None]
    saleor_deleted_at: Mapped[datetime | None]

    # First touch: the UTM source of the earliest order or checkout that carried one.
    utm_source: Mapped[str | None] = mapped_column(String(256))
    utm_medium: Mapped[str | None] = mapped_column(String(256))
    utm_campaign: Mapped[str | None] = mapped_column(String(256))
    utm_term: Mapped[str | None] = mapped_column(String(256))
    utm_content: Mapped[str | None] = mapped_column(String(256))
    referrer: Mapped[str | None] = mapped_column(String(2048))
    source_at: Mapped[datetime | None]

    # Aggregates, recomputed from the orders on every fold that touches the profile.
    orders_count: Mapped[int] = mapped_column(Integer, default=0)
    paid_orders_count: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_orders_count: Mapped[int] = mapped_column(Integer, default=0)
    refunded_orders_count: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str | None] = mapped_column(String(3))
    total_spent: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    average_order_value: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    first_order_at: Mapped[datetime | None]
    last_order_at: Mapped[datetime | None]
    average_days_between_orders: Mapped[float | None] = mapped_column(Float)
    last_checkout_at: Mapped[datetime | None]
    # The sales channel of the customer's latest order (or checkout when none).
    channel: Mapped[str | None] = mapped_column(String(256))

    # RFM scores 1–5 and the named cell (plugin/segments/rfm.py).
    rfm_recency: Mapped[int | None] = mapped_column(Integer)
    rfm_frequency: Mapped[int | None] = mapped_column(Integer)
    rfm_monetary: Mapped[int | None] = mapped_column(Integer)
    rfm_cell: Mapped[str | None] = mapped_column(String(32), index=True)

    # Customer score 0–100 (plugin/scoring/), explainable from the same inputs.
    score: Mapped[int | None] = mapped_column(Integer, index=True)

    # Predictions from the shop's BG/NBD + Gamma-Gamma fit (plugin/predictions/).
    p_alive: Mapped[float | None] = mapped_column(Float)
    predicted_orders_12m: Mapped[float | None] = mapped_column(Float)
    predicted_value_12m: Mapped[Decimal | None] = mapped_column(Money)
    predicted_next_order_at: Mapped[datetime | None]


class Identity(KeyedTenantMixin, TimestampMixin, Base):
    """A key that names a person. Consent belongs to the identity (this address, this
    phone), not to the profile, so merging profiles never spreads consent."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("installation_id", "kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[IdentityKind] = mapped_column(Enum(IdentityKind, native_enum=False, length=16))
    value: Mapped[str] = mapped_column(String(320))
    marketing_consent: Mapped[ConsentState | None] = mapped_column(
        Enum(ConsentState, native_enum=False, length=16)
    )
    consent_updated_at: Mapped[datetime | None]
    consent_source: Mapped[str | None] = mapped_column(String(256))


class ProfileTotal(TenantMixin, Base):
    """Money figures per currency: a shop selling in several currencies never adds them up."""

    __tablename__ = "profile_totals"
    __table_args__ = (UniqueConstraint("profile_id", "currency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), index=True
    )
    currency: Mapped[str] = mapped_column(String(3))
    orders_count: Mapped[int] = mapped_column(Integer, default=0)
    paid_orders_count: Mapped[int] = mapped_column(Integer, default=0)
    total_spent: Mapped[Decimal] = mapped_column(Money, default=ZERO)
    average_order_value: Mapped[Decimal] = mapped_column(Money, default=ZERO)


class ProfileTag(TenantMixin, Base):
    """A label staff put on a customer ("wholesale", "influencer"); segments can test it."""

    __tablename__ = "profile_tags"
    __table_args__ = (
        UniqueConstraint("profile_id", "tag"),
        Index("ix_profile_tags_installation_id_tag", "installation_id", "tag"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), index=True
    )
    tag: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
