"""Raw, verified webhook bodies waiting to be (or already) folded into the CRM model."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import Base, TenantMixin, utcnow


class InboxStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class InboxEvent(TenantMixin, Base):
    __tablename__ = "inbox_events"
    __table_args__ = (
        # A redelivery of the same event carries the same bytes: the body hash is the key.
        UniqueConstraint("installation_id", "event_type", "body_sha256"),
        Index("ix_inbox_events_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    body_sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime | None]
    saleor_version: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[InboxStatus] = mapped_column(
        Enum(InboxStatus, native_enum=False, length=16), default=InboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    folded_at: Mapped[datetime | None]
