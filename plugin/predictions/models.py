"""The fitted purchase model of a shop, per currency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import Base, JSONType, TenantMixin


class PredictionModel(TenantMixin, Base):
    """BG/NBD (r, alpha, a, b) and Gamma-Gamma (p, q, gamma) parameters, or why there are
    none yet (`status` "too_thin" / "failed", with `message`)."""

    __tablename__ = "prediction_models"
    __table_args__ = (UniqueConstraint("installation_id", "currency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType)
    customers: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    fitted_at: Mapped[datetime]
