"""Writing timeline entries: at most one per source event (dedup key), in Saleor's time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.upsert import insert_ignore
from plugin.timeline.models import TimelineEntry


async def record(
    session: AsyncSession,
    *,
    installation_id: int,
    profile_id: int,
    kind: str,
    occurred_at: datetime,
    dedup_key: str,
    summary: str = "",
    subject_type: str | None = None,
    subject_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    await insert_ignore(
        session,
        TimelineEntry,
        {
            "installation_id": installation_id,
            "profile_id": profile_id,
            "kind": kind,
            "occurred_at": occurred_at,
            "dedup_key": dedup_key,
            "summary": summary[:1024],
            "subject_type": subject_type,
            "subject_id": subject_id,
            "data": data,
        },
        conflict_columns=["installation_id", "dedup_key"],
    )
