"""Advertising spend the merchant enters, so ROI per source can be shown."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import Base, Money, TenantMixin


class AdCost(TenantMixin, Base):
    """Spent `amount` on `source` (optionally one medium/campaign) from `day_from` to `day_to`."""

    __tablename__ = "ad_costs"
    __table_args__ = (Index("ix_ad_costs_installation_id_source", "installation_id", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(256))
    medium: Mapped[str | None] = mapped_column(String(256))
    campaign: Mapped[str | None] = mapped_column(String(256))
    day_from: Mapped[date] = mapped_column(Date)
    day_to: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime]


class FunnelHour(TenantMixin, Base):
    """The funnel's counts for the checkouts started in one UTC hour, per channel and source.

    `early_order_at` is set (to the order's `placed_at`) only on rows of checkouts whose order
    was placed before the checkout started; such an order counts only for periods starting
    before it (the report follows orders from the period's start), so those rare checkouts
    keep their own rows. Recomputed per hour, never incremented (plugin/analytics/rollups.py):
    an hour is small enough to recompute on every fold, and a year is 8,760 of them.
    """

    __tablename__ = "analytics_funnel_hourly"
    __table_args__ = (
        Index("ix_analytics_funnel_hourly_installation_id_hour", "installation_id", "hour"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[datetime]  # the UTC hour's start
    channel: Mapped[str | None] = mapped_column(String(256))
    source: Mapped[str | None] = mapped_column(String(256))
    early_order_at: Mapped[datetime | None]
    started: Mapped[int] = mapped_column(Integer)
    emailed: Mapped[int] = mapped_column(Integer)  # an e-mail is known
    contact: Mapped[int] = mapped_column(Integer)  # an e-mail is known or it became an order
    ordered: Mapped[int] = mapped_column(Integer)
    paid: Mapped[int] = mapped_column(Integer)
    fulfilled: Mapped[int] = mapped_column(Integer)


class CustomerMonth(TenantMixin, Base):
    """One row per customer and calendar month (UTC) with an active order, for cohorts.

    Carries the customer's cohort fields as the profile has them (first order, channel,
    first-touch source) and the first and last active order of that month.
    """

    __tablename__ = "analytics_customer_months"
    __table_args__ = (
        Index(
            "ix_analytics_customer_months_installation_id_first_order_at",
            "installation_id",
            "first_order_at",
        ),
    )

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[int] = mapped_column(Integer, primary_key=True)  # year × 12 + month − 1
    cohort: Mapped[int | None] = mapped_column(Integer)  # month of `first_order_at`
    first_order_at: Mapped[datetime | None]
    channel: Mapped[str | None] = mapped_column(String(256))
    source: Mapped[str | None] = mapped_column(String(256))
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]


class RollupState(Base):
    """The installation's rollups were rebuilt once and are kept current since."""

    __tablename__ = "analytics_rollup_state"

    installation_id: Mapped[int] = mapped_column(
        ForeignKey("installations.id", ondelete="CASCADE"), primary_key=True
    )
    rebuilt_at: Mapped[datetime]
