"""A note on a customer, signed by the staff user (or API token) that wrote it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import Base, TenantMixin, utcnow


class Note(TenantMixin, Base):
    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_profile_id_created_at", "profile_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    # Saleor's User global id and e-mail from the dashboard token; null for API tokens.
    author_user_id: Mapped[str | None] = mapped_column(String(256))
    author_email: Mapped[str | None] = mapped_column(String(320))
    author_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
