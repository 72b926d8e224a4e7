"""A shop's typical interval between a customer's orders: what "lapsed" means for the
win-back flow. The median gap between consecutive orders of the same customer over the
shop's recent orders; a preset default until there are enough repeat purchases."""

from __future__ import annotations

from datetime import datetime
from statistics import median

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Order

RECENT_ORDERS = 20_000  # enough for a stable median, cheap enough for an hourly check
MIN_GAPS = 20
SHORTEST, LONGEST = 7.0, 365.0


async def typical_interval_days(
    session: AsyncSession, installation_id: int, default: float
) -> float:
    rows = await session.execute(
        select(Order.profile_id, Order.placed_at)
        .where(Order.installation_id == installation_id, Order.profile_id.is_not(None))
        .where(Order.status.not_in(["CANCELED", "CANCELLED", "DRAFT"]))
        .order_by(Order.placed_at.desc())
        .limit(RECENT_ORDERS)
    )
    by_customer: dict[int, list[datetime]] = {}
    for profile_id, placed_at in rows:
        if profile_id is not None:
            by_customer.setdefault(profile_id, []).append(placed_at)
    gaps = [
        (later - earlier).total_seconds() / 86_400
        for times in by_customer.values()
        for later, earlier in zip(times, times[1:], strict=False)
        if later > earlier
    ]
    if len(gaps) < MIN_GAPS:
        return default
    return float(min(max(round(median(gaps)), SHORTEST), LONGEST))
