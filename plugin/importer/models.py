"""An import run (one backfill of a shop's history) and the objects it could not fold."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from plugin.db.base import Base, TenantMixin, utcnow


class ImportStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ImportRun(TenantMixin, Base):
    """One pass over Saleor's lists. `resources` keeps, per list, the Relay cursor of the
    last page folded (committed with that page's rows, so a restart resumes exactly
    there), how many objects were folded and Saleor's `totalCount`."""

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[ImportStatus] = mapped_column(
        Enum(ImportStatus, native_enum=False, length=16), default=ImportStatus.QUEUED
    )
    requested_by: Mapped[str] = mapped_column(String(256), default="install")
    resources: Mapped[dict[str, Any]]
    processed: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    # Seconds of work so far: a resumed run's rate (and ETA) ignores the time it waited.
    busy_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class StaleFigures(TenantMixin, Base):
    """A profile an import touched whose figures (counts, spend, per-currency totals) are
    still to be recomputed: an import computes each customer's figures once, when the run
    ends, instead of once per page naming them. Kept in the database so a run resumed by
    another worker (or after a crash) still recomputes what an earlier one touched."""

    __tablename__ = "import_stale_figures"

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )


class ImportFailure(TenantMixin, Base):
    """An object Saleor listed that could not be folded, with the reason."""

    __tablename__ = "import_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("import_runs.id", ondelete="CASCADE"), index=True
    )
    resource: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(256))
    message: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
