"""An installation: one Saleor instance that installed the app (the APL of app-sdk)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import Base, TimestampMixin


class InstallationStatus(enum.StrEnum):
    ACTIVE = "active"
    REMOVED = "removed"


class Installation(TimestampMixin, Base):
    __tablename__ = "installations"

    id: Mapped[int] = mapped_column(primary_key=True)
    saleor_api_url: Mapped[str] = mapped_column(String(2048), unique=True)
    saleor_domain: Mapped[str] = mapped_column(String(512), default="")
    app_id: Mapped[str] = mapped_column(String(256))
    # The app token, encrypted with a key derived from SECRET_KEY (plugin.kit.crypto).
    token_encrypted: Mapped[str] = mapped_column(Text)
    jwks: Mapped[dict[str, Any]]
    saleor_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[InstallationStatus] = mapped_column(
        Enum(InstallationStatus, native_enum=False, length=16), default=InstallationStatus.ACTIVE
    )
    installed_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
    # What the merchant tuned: RFM thresholds, score weights, … (each owner validates its part).
    preferences: Mapped[dict[str, Any] | None]
