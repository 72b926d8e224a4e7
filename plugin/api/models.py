"""Developer API tokens: shown once, stored as a SHA-256 hash, scoped to one installation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import Base, TenantMixin, utcnow


class ApiToken(TenantMixin, Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    # The secret has 256 random bits, so a fast hash is as safe as a slow one.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, to tell tokens apart in a list.
    prefix: Mapped[str] = mapped_column(String(16))
    permissions: Mapped[list[str]] = mapped_column(JSON)
    created_by_user_id: Mapped[str | None] = mapped_column(String(256))
    created_by_email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
