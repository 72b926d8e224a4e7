"""Revenue and LTV by source, by segment and by RFM cell, always per currency.

Revenue is money kept, Σ max(charged − refunded, 0) over every order whatever its status,
as the profile's total spent (see plugin/analytics/sql.py): a cancelled order whose charge
was never refunded adds its money but counts as no order and makes no one a customer.
Order and customer counts are of active (placed, not cancelled) orders only. Two
attributions, on purpose:
- revenue by source credits each order to its own UTM (inherited from its checkout): what
  brought *this* sale; ROI uses the same;
- LTV by source credits everything a customer ever spent to their first-touch source (the
  profile's): what the channel that brought them in is worth.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.analytics.period import Period, money_average
from plugin.analytics.sql import (
    acquired,
    active_customer,
    active_order,
    count_if,
    counted_order,
    in_period,
    money_kept,
    sum_money,
)
from plugin.commerce.models import Order
from plugin.profiles.models import Profile
from plugin.segments.models import Segment, SegmentMembership
from plugin.segments.rfm import MatrixCell, rfm_matrix

Level = Literal["source", "medium", "campaign"]


@dataclass(frozen=True)
class SourceRevenue:
    source: str | None  # None: orders without a UTM source (direct, unknown)
    medium: str | None  # only filled when grouped by medium or campaign
    campaign: str | None  # only filled when grouped by campaign
    currency: str
    orders: int  # active orders
    customers: int  # customers with an active order
    revenue: Decimal  # money kept of every order, cancelled ones included


@dataclass(frozen=True)
class SourceLtv:
    source: str | None  # first-touch source of the customers
    currency: str
    customers: int  # customers with an active order in this currency
    revenue: Decimal  # everything they spent so far (money kept, cancelled orders included)
    ltv: Decimal | None


@dataclass(frozen=True)
class SegmentCurrencyValue:
    currency: str
    customers: int  # members with an active order in this currency
    revenue: Decimal  # lifetime money kept, so far (cancelled orders included)
    ltv: Decimal | None
    period_orders: int  # active orders placed in the period
    period_revenue: Decimal  # money kept of every order placed in the period


@dataclass(frozen=True)
class SegmentValue:
    segment_id: int
    key: str
    name: str
    members: int
    currencies: tuple[SegmentCurrencyValue, ...]


@dataclass(frozen=True)
class RfmRevenue:
    currency: str
    cells: tuple[MatrixCell, ...]


async def revenue_by_source(
    session: AsyncSession,
    installation_id: int,
    period: Period,
    *,
    channel: str | None = None,
    source: str | None = None,
    level: Level = "source",
) -> tuple[SourceRevenue, ...]:
    """Orders placed in the period, grouped by their UTM source (medium, campaign): active
    orders and their customers counted, money kept of every order (cancelled too) added."""
    keys = [Order.utm_source, Order.utm_medium, Order.utm_campaign][
        : ("source", "medium", "campaign").index(level) + 1
    ]
    query = (
        select(
            *keys,
            Order.currency,
            count_if(active_order()),
            active_customer(),
            sum_money(money_kept()),
        )
        .where(
            Order.installation_id == installation_id,
            counted_order(),
            in_period(Order.placed_at, period),
        )
        .group_by(*keys, Order.currency)
    )
    if channel is not None:
        query = query.where(Order.channel_slug == channel)
    if source is not None:
        query = query.where(Order.utm_source == source)
    found = []
    for row in await session.execute(query):
        values: tuple[Any, ...] = tuple(row)
        names: list[str | None] = [*values[: len(keys)], None, None]
        currency, orders, customers, revenue = values[len(keys) :]
        source_, medium, campaign = names[:3]
        found.append(
            SourceRevenue(
                source_, medium, campaign, currency, int(orders), int(customers), Decimal(revenue)
            )
        )
    return tuple(sorted(found, key=_source_order))


def _source_order(row: SourceRevenue) -> tuple[object, ...]:
    names = (row.source or "", row.medium or "", row.campaign or "")
    return (row.source is None, *names, row.currency)


async def ltv_by_source(
    session: AsyncSession,
    installation_id: int,
    period: Period | None = None,
    *,
    channel: str | None = None,
    source: str | None = None,
) -> tuple[SourceLtv, ...]:
    """Lifetime value per first-touch source; with a period, of customers acquired in it
    (first active order in it: one whose every order was cancelled was never acquired).
    Their money kept includes their cancelled orders'; customers are counted per currency
    they have an active order in."""
    rows = await session.execute(
        select(
            Profile.utm_source,
            Order.currency,
            active_customer(),
            sum_money(money_kept()),
        )
        .join(Order, Order.profile_id == Profile.id)
        .where(
            *acquired(installation_id, period, channel, source),
            Order.installation_id == installation_id,
            counted_order(),
        )
        .group_by(Profile.utm_source, Order.currency)
    )
    found = [
        SourceLtv(name, currency, int(n), Decimal(revenue), money_average(Decimal(revenue), n))
        for name, currency, n, revenue in rows
    ]
    return tuple(sorted(found, key=lambda r: (r.source is None, r.source or "", r.currency)))


async def revenue_by_segment(
    session: AsyncSession, installation_id: int, period: Period, *, channel: str | None = None
) -> tuple[SegmentValue, ...]:
    """Every segment with its current members' lifetime value and revenue in the period
    (money kept, cancelled orders included; customers and orders counted when active)."""
    segments = list(
        await session.execute(
            select(Segment.id, Segment.key, Segment.name)
            .where(Segment.installation_id == installation_id)
            .order_by(Segment.name, Segment.id)
        )
    )
    members = {
        segment_id: int(n)
        for segment_id, n in await session.execute(
            select(SegmentMembership.segment_id, func.count())
            .where(SegmentMembership.installation_id == installation_id)
            .group_by(SegmentMembership.segment_id)
        )
    }
    placed_in_period = in_period(Order.placed_at, period)
    query = (
        select(
            SegmentMembership.segment_id,
            Order.currency,
            active_customer(),
            sum_money(money_kept()),
            count_if(and_(placed_in_period, active_order())),
            sum_money(money_kept(), placed_in_period),
        )
        .join(Order, Order.profile_id == SegmentMembership.profile_id)
        .where(
            SegmentMembership.installation_id == installation_id,
            Order.installation_id == installation_id,
            counted_order(),
        )
        .group_by(SegmentMembership.segment_id, Order.currency)
        .order_by(SegmentMembership.segment_id, Order.currency)
    )
    if channel is not None:
        query = query.where(Order.channel_slug == channel)
    values: dict[int, list[SegmentCurrencyValue]] = defaultdict(list)
    for segment_id, currency, n, revenue, orders, in_range in await session.execute(query):
        values[segment_id].append(
            SegmentCurrencyValue(
                currency,
                int(n),
                Decimal(revenue),
                money_average(Decimal(revenue), n),
                int(orders),
                Decimal(in_range),
            )
        )
    return tuple(
        SegmentValue(id_, key, name, members.get(id_, 0), tuple(values[id_]))
        for id_, key, name in segments
    )


async def rfm_revenue(session: AsyncSession, installation_id: int) -> tuple[RfmRevenue, ...]:
    """The RFM grid (customers and money kept per cell) of every scored currency. The money
    is the profiles' total spent, cancelled orders' kept charges included; only customers
    with an active order are scored (see plugin/segments/rfm.py)."""
    currencies = await session.scalars(
        select(Profile.currency)
        .where(
            Profile.installation_id == installation_id,
            Profile.currency.is_not(None),
            Profile.rfm_recency.is_not(None),
        )
        .distinct()
        .order_by(Profile.currency)
    )
    return tuple(
        [
            RfmRevenue(currency, tuple(await rfm_matrix(session, installation_id, currency)))
            for currency in list(currencies)
            if currency
        ]
    )
