"""Advertising spend per source, entered by the merchant, and ROI per source.

A cost covers whole UTC days `day_from`…`day_to`; when it overlaps a period only in part,
the period gets the overlapping share of it (spend assumed even over its days). ROI per
source and currency = (revenue − cost) ÷ cost, revenue being that of the orders placed in
the period carrying the source (`revenue_by_source`). Sources match exactly.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.analytics.models import AdCost
from plugin.analytics.period import CENT, Period, midnight
from plugin.analytics.revenue import revenue_by_source
from plugin.db.base import ZERO, utcnow

ROI_PLACES = Decimal("0.0001")
MAX_AMOUNT = Decimal("1e14")  # what Money (18, 4) can hold


class InvalidAdCost(ValueError):
    """The entry cannot be stored as given (the message says why, for staff)."""


@dataclass(frozen=True)
class AdCostEntry:
    id: int
    source: str
    medium: str | None
    campaign: str | None
    day_from: date
    day_to: date
    amount: Decimal
    currency: str
    created_at: datetime


@dataclass(frozen=True)
class SourceRoi:
    source: str | None  # None: revenue from orders without a source (never has a cost)
    currency: str
    revenue: Decimal
    cost: Decimal  # prorated to the period
    roi: Decimal | None  # None when nothing was spent


def _entry(row: AdCost) -> AdCostEntry:
    return AdCostEntry(
        row.id,
        row.source,
        row.medium,
        row.campaign,
        row.day_from,
        row.day_to,
        Decimal(row.amount),
        row.currency,
        row.created_at,
    )


def _text(value: str | None, what: str, *, required: bool = False) -> str | None:
    cleaned = (value or "").strip()
    if not cleaned:
        if required:
            raise InvalidAdCost(f"{what} is required")
        return None
    if len(cleaned) > 256:
        raise InvalidAdCost(f"{what} is longer than 256 characters")
    return cleaned


async def add_ad_cost(
    session: AsyncSession,
    installation_id: int,
    *,
    source: str,
    day_from: date,
    day_to: date,
    amount: Decimal,
    currency: str,
    medium: str | None = None,
    campaign: str | None = None,
) -> AdCostEntry:
    if not amount.is_finite() or amount < 0:
        raise InvalidAdCost("the amount must be zero or more")
    if amount >= MAX_AMOUNT:
        raise InvalidAdCost("the amount is too large")
    if day_from > day_to:
        raise InvalidAdCost("the first day must not be after the last day")
    if not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise InvalidAdCost("the currency must be a three-letter code")
    row = AdCost(
        installation_id=installation_id,
        source=_text(source, "source", required=True),
        medium=_text(medium, "medium"),
        campaign=_text(campaign, "campaign"),
        day_from=day_from,
        day_to=day_to,
        amount=amount,
        currency=currency.upper(),
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return _entry(row)


async def list_ad_costs(
    session: AsyncSession,
    installation_id: int,
    *,
    period: Period | None = None,
    source: str | None = None,
) -> tuple[AdCostEntry, ...]:
    """The entries (overlapping the period, of one source), oldest first."""
    query = select(AdCost).where(AdCost.installation_id == installation_id)
    if period is not None:
        query = query.where(
            AdCost.day_from <= period.end.date(), AdCost.day_to >= period.start.date()
        )
        rows = [r for r in await session.scalars(query) if _overlap(r.day_from, r.day_to, period)]
    else:
        rows = list(await session.scalars(query))
    if source is not None:
        rows = [r for r in rows if r.source == source]
    return tuple(_entry(r) for r in sorted(rows, key=lambda r: (r.day_from, r.id)))


async def delete_ad_cost(session: AsyncSession, installation_id: int, cost_id: int) -> bool:
    """True when the entry existed (in this installation) and is gone."""
    result = await session.execute(
        delete(AdCost)
        .where(AdCost.installation_id == installation_id, AdCost.id == cost_id)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def _span(day_from: date, day_to: date) -> tuple[datetime, datetime]:
    return midnight(day_from), midnight(day_to + timedelta(days=1))


def _overlap(day_from: date, day_to: date, period: Period) -> timedelta:
    start, end = _span(day_from, day_to)
    return max(min(end, period.end) - max(start, period.start), timedelta(0))


def prorated(entry: AdCostEntry, period: Period) -> Decimal:
    """The part of the cost that falls in the period, by time covered."""
    start, end = _span(entry.day_from, entry.day_to)
    covered = _overlap(entry.day_from, entry.day_to, period)
    if covered >= end - start:
        return entry.amount
    return entry.amount * Decimal(covered.total_seconds()) / Decimal((end - start).total_seconds())


async def roi_by_source(
    session: AsyncSession, installation_id: int, period: Period, *, source: str | None = None
) -> tuple[SourceRoi, ...]:
    costs: dict[tuple[str | None, str], Decimal] = defaultdict(lambda: ZERO)
    for entry in await list_ad_costs(session, installation_id, period=period, source=source):
        costs[(entry.source, entry.currency)] += prorated(entry, period)
    revenue: dict[tuple[str | None, str], Decimal] = defaultdict(lambda: ZERO)
    for found in await revenue_by_source(session, installation_id, period, source=source):
        revenue[(found.source, found.currency)] += found.revenue
    rows = []
    keys = sorted(costs.keys() | revenue.keys(), key=lambda k: (k[0] is None, k[0] or "", k[1]))
    for key in keys:
        cost = costs[key].quantize(CENT)
        earned = revenue[key]
        roi = ((earned - cost) / cost).quantize(ROI_PLACES) if cost > 0 else None
        rows.append(SourceRoi(key[0], key[1], earned, cost, roi))
    return tuple(rows)
