"""Timeline entries, stamped with Saleor's own times and unique per source event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import Base, KeyedTenantMixin, utcnow


class TimelineEntry(KeyedTenantMixin, Base):
    __tablename__ = "timeline_entries"
    __table_args__ = (
        UniqueConstraint("installation_id", "dedup_key"),
        Index("ix_timeline_entries_profile_occurred", "profile_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(256))
    summary: Mapped[str] = mapped_column(String(1024), default="")
    data: Mapped[dict[str, Any] | None]
    dedup_key: Mapped[str] = mapped_column(String(512))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
