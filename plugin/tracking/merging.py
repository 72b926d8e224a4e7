"""A merged-away duplicate's parcels go to the survivor (their timeline entries move with
the rest of the timeline)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.movers import register_mover
from plugin.tracking.models import Shipment


async def move_shipments(session: AsyncSession, winner_id: int, loser_id: int) -> None:
    await session.execute(
        update(Shipment)
        .where(Shipment.profile_id == loser_id)
        .values(profile_id=winner_id)
        .execution_options(synchronize_session=False)
    )


register_mover("shipments", move_shipments)
