"""The checkout funnel: checkouts started in the period, followed to delivery.

Each step counts the checkouts that reached it *and every step before*, so drop-offs are
never negative:
- started: a checkout snapshot whose `started_at` is in the period;
- contact: an e-mail is known (or the checkout became an order, which always has one);
- ordered: it became a placed order (not a draft or expired);
- paid: that order is active and fully charged;
- fulfilled: goods of that order left the warehouse: its status, which Saleor derives from
  its fulfillments, is (partially) fulfilled or returned since (the order row is already
  joined; a join to `fulfillments` would double the cost of the report);
- delivered: not measured yet (no courier tracking; a fulfillment is the latest data).
Channel and source are those of the checkout (its own `utm_source`, which its order inherits).

Once the installation's rollups are built (plugin/analytics/rollups.py), the whole UTC hours
of the period are read from `analytics_funnel_hourly` and only the partial hours at its ends
from the checkouts; the figures are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.analytics import rollups
from plugin.analytics.period import Period, share
from plugin.analytics.rollups import SHIPPED
from plugin.analytics.sql import count_if, paid_order
from plugin.commerce.models import Checkout, Order
from plugin.profiles.aggregates import NOT_PLACED

__all__ = ["SHIPPED", "Funnel", "FunnelStep", "funnel"]
STEPS = ("started", "contact", "ordered", "paid", "fulfilled", "delivered")
NOT_MEASURED = "no courier tracking yet: a fulfillment is the latest delivery data"


@dataclass(frozen=True)
class FunnelStep:
    key: str
    count: int | None  # None: the step is not measured (see `not_measured`)
    conversion: float | None  # of the previous step
    drop_off: int | None  # checkouts lost since the previous step
    of_started: float | None
    not_measured: str | None = None


@dataclass(frozen=True)
class Funnel:
    period: Period
    channel: str | None
    source: str | None
    steps: tuple[FunnelStep, ...]


async def funnel(
    session: AsyncSession,
    installation_id: int,
    period: Period,
    *,
    channel: str | None = None,
    source: str | None = None,
) -> Funnel:
    """The rollup's whole hours plus the partial hours at the ends (or one scan)."""
    hours = rollups.whole_hours(period.start, period.end)
    if hours is None or not await rollups.is_built(session, installation_id):
        counts = await _scan(
            session, installation_id, period.start, period.end, period.start, channel, source
        )
        return Funnel(period, channel, source, _steps(counts))
    counts = await rollups.funnel_counts(
        session, installation_id, hours, period.start, channel, source
    )
    for start, end in ((period.start, hours[0]), (hours[1], period.end)):
        if start < end:
            edge = await _scan(session, installation_id, start, end, period.start, channel, source)
            counts = [a + b for a, b in zip(counts, edge, strict=True)]
    return Funnel(period, channel, source, _steps(counts))


async def _scan(
    session: AsyncSession,
    installation_id: int,
    start: datetime,
    end: datetime,
    order_from: datetime,
    channel: str | None,
    source: str | None,
) -> list[int]:
    """One scan of the checkouts started in `[start, end)`, joined to their orders placed
    from `order_from` (the period's start)."""
    ordered = Order.id.is_not(None)
    contact = or_(func.coalesce(Checkout.email, "") != "", ordered)
    paid = and_(ordered, paid_order())
    fulfilled = and_(paid, Order.status.in_(SHIPPED))
    query = (
        select(
            func.count(), count_if(contact), count_if(ordered), count_if(paid), count_if(fulfilled)
        )
        .select_from(Checkout)
        .outerjoin(
            Order,
            and_(
                Order.installation_id == installation_id,
                Order.saleor_id == Checkout.order_saleor_id,
                Order.status.not_in(NOT_PLACED),
                # Placed after its checkout started: lets PostgreSQL read only the
                # period's orders through (installation_id, placed_at).
                Order.placed_at >= order_from,
            ),
        )
        .where(
            Checkout.installation_id == installation_id,
            Checkout.started_at >= start,
            Checkout.started_at < end,
        )
    )
    if channel is not None:
        query = query.where(Checkout.channel_slug == channel)
    if source is not None:
        query = query.where(Checkout.utm_source == source)
    return [int(n) for n in (await session.execute(query)).one()]


def _steps(counts: list[int]) -> tuple[FunnelStep, ...]:
    steps: list[FunnelStep] = []
    previous: int | None = None
    for key, count in zip(STEPS, counts, strict=False):
        steps.append(
            FunnelStep(
                key,
                count,
                conversion=None if previous is None else share(count, previous),
                drop_off=None if previous is None else previous - count,
                of_started=share(count, counts[0]),
            )
        )
        previous = count
    steps.append(FunnelStep("delivered", None, None, None, None, not_measured=NOT_MEASURED))
    return tuple(steps)
