"""Advertising spend the merchant enters, so ROI per source can be shown."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, Index, String
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
