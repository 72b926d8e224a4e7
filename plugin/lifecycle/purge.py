"""Deleting an uninstalled shop's data once its retention has passed.

Rows are deleted table by table (children first) rather than left to the installation's
ON DELETE CASCADE, so the work does not depend on SQLite's foreign-key pragma and each
statement uses the `installation_id` index. The shop's lock is held throughout, and the
removal is checked again under it: a re-install that won the race keeps its data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.locks import lock_installation
from plugin.db.models import Base
from plugin.saleor.models import Installation, InstallationStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Purged:
    installation_id: int
    saleor_api_url: str
    rows: int


async def due_for_purge(session: AsyncSession, now: datetime, retention: timedelta) -> list[int]:
    return list(
        await session.scalars(
            select(Installation.id)
            .where(
                Installation.status == InstallationStatus.REMOVED,
                Installation.removed_at <= now - retention,
            )
            .order_by(Installation.id)
        )
    )


async def purge_installation(
    session: AsyncSession, installation_id: int, now: datetime, retention: timedelta
) -> Purged | None:
    """Delete everything the shop left behind; None when it came back (or is gone)."""
    await lock_installation(session, installation_id)
    installation = await session.get(Installation, installation_id, populate_existing=True)
    if installation is None or installation.status is not InstallationStatus.REMOVED:
        return None
    if installation.removed_at is None or installation.removed_at > now - retention:
        return None
    rows = 0
    for table in reversed(Base.metadata.sorted_tables):
        if table.name == Installation.__tablename__ or "installation_id" not in table.c:
            continue
        result = await session.execute(
            delete(table).where(table.c.installation_id == installation_id)
        )
        rows += int(getattr(result, "rowcount", 0) or 0)
    api_url = installation.saleor_api_url
    await session.delete(installation)
    await session.flush()
    logger.info("uninstalled shop purged", extra={"installation_id": installation_id})
    return Purged(installation_id, api_url, rows)
