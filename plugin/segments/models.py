"""Segments (a rule over customers), who is in them, and their daily member counts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import Base, JSONType, TenantMixin, TimestampMixin


class Segment(TenantMixin, TimestampMixin, Base):
    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("installation_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))  # stable handle: "vip", "sleeping", …
    name: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[dict[str, Any]]
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime | None]
    # A waiting segment computed in chunks by the scheduled job (plugin/segments/fill.py):
    # customers done of how many, since when, committed per chunk so the dashboard can
    # show a percentage and an ETA. NULL when no such computation is going on.
    recompute_started_at: Mapped[datetime | None]
    recompute_done: Mapped[int | None] = mapped_column(Integer)
    recompute_total: Mapped[int | None] = mapped_column(Integer)


# `Segment.refreshed_at` of a rule changed but not recomputed yet: older than any refresh,
# so the next scheduled run recomputes the shop, and (unlike NULL, a segment never
# computed) reports who entered and left.
RULE_CHANGED = datetime(1970, 1, 1, tzinfo=UTC)


def is_waiting(segment: Segment) -> bool:
    """Never computed, or its rule changed since: the scheduled job computes it next."""
    return segment.refreshed_at is None or segment.refreshed_at == RULE_CHANGED


class SegmentMembership(TenantMixin, Base):
    """Written by the million on a first fill: no key of its own to `installations` (its
    segment and its customer cascade) and no index by segment alone (the unique pair's
    index serves)."""

    __tablename__ = "segment_memberships"
    __table_args__ = (UniqueConstraint("segment_id", "profile_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    installation_id: Mapped[int] = mapped_column(Integer, index=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), index=True
    )
    since: Mapped[datetime]


class SegmentDailyCount(TenantMixin, Base):
    __tablename__ = "segment_daily_counts"
    __table_args__ = (UniqueConstraint("segment_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), index=True
    )
    day: Mapped[date] = mapped_column(Date)
    members: Mapped[int] = mapped_column(Integer, default=0)


class RfmBoundaries(TenantMixin, Base):
    """The quantile boundaries a shop's customers are scored against, per currency."""

    __tablename__ = "rfm_boundaries"
    __table_args__ = (UniqueConstraint("installation_id", "currency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    recency_days: Mapped[list[float]] = mapped_column(JSONType)
    frequency: Mapped[list[float]] = mapped_column(JSONType)
    monetary: Mapped[list[str]] = mapped_column(JSONType)  # decimals as text
    buyers: Mapped[int] = mapped_column(Integer, default=0)
    quantiles: Mapped[bool] = mapped_column(Boolean, default=False)
    computed_at: Mapped[datetime]
