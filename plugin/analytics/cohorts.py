"""Cohort retention: customers grouped by the month of their first order.

A cohort is every customer whose first active order (`Profile.first_order_at`) falls in that
UTC month; cohorts are those starting in the period. Month k of a cohort is the share of
its customers with an active order in the k-th calendar month after it (k = 0 is the
cohort month itself, so 100 %), observed up to `now`. Filters: the profile's channel and
first-touch source.

Once the installation's rollups are built (plugin/analytics/rollups.py), the active
customers per month are read from `analytics_customer_months` instead of the orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.analytics import rollups
from plugin.analytics.period import Period, share
from plugin.analytics.sql import acquired, active_order, dialect_of, month_index
from plugin.commerce.models import Order
from plugin.db.base import utcnow
from plugin.profiles.models import Profile


@dataclass(frozen=True)
class Cohort:
    month: date  # first day of the cohort's month
    size: int
    active: tuple[int, ...]  # customers who ordered in month k since the cohort month
    retention: tuple[float, ...]  # active[k] / size


@dataclass(frozen=True)
class CohortRetention:
    period: Period
    channel: str | None
    source: str | None
    cohorts: tuple[Cohort, ...]


def month_start(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


def month_of(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


async def cohort_sizes(
    session: AsyncSession,
    installation_id: int,
    period: Period,
    *,
    channel: str | None = None,
    source: str | None = None,
) -> dict[int, int]:
    """Customers per first-order month (as a month index, see `month_index`)."""
    customers = (
        select(month_index(Profile.first_order_at, dialect_of(session)).label("cohort"))
        .where(*acquired(installation_id, period, channel, source))
        .subquery()
    )
    rows = await session.execute(
        select(customers.c.cohort, func.count()).group_by(customers.c.cohort)
    )
    return {int(cohort): int(n) for cohort, n in rows}


async def cohort_retention(
    session: AsyncSession,
    installation_id: int,
    period: Period,
    *,
    channel: str | None = None,
    source: str | None = None,
    now: datetime | None = None,
) -> CohortRetention:
    now = now or utcnow()
    sizes = await cohort_sizes(session, installation_id, period, channel=channel, source=source)
    # The rollup knows each month's first and last order: exact unless the period starts
    # in the month of `now`.
    if month_of(period.start.astimezone(UTC)) != month_of(now.astimezone(UTC)) and (
        await rollups.is_built(session, installation_id)
    ):
        rows: Sequence[Any] = await rollups.cohort_activity(
            session, installation_id, period.start, period.end, now, channel, source
        )
    else:
        rows = await _activity(session, installation_id, period, channel, source, now)
    active: dict[tuple[int, int], int] = {(int(c), int(m)): int(n) for c, m, n in rows}
    last = month_of(now)
    cohorts = []
    for cohort in sorted(sizes):
        counts = tuple(active.get((cohort, m), 0) for m in range(cohort, max(cohort, last) + 1))
        cohorts.append(
            Cohort(
                month_start(cohort),
                sizes[cohort],
                counts,
                tuple(share(n, sizes[cohort]) or 0.0 for n in counts),
            )
        )
    return CohortRetention(period, channel, source, tuple(cohorts))


async def _activity(
    session: AsyncSession,
    installation_id: int,
    period: Period,
    channel: str | None,
    source: str | None,
    now: datetime,
) -> Sequence[Any]:
    """(cohort, month, customers) from the orders themselves."""
    dialect = dialect_of(session)
    # One row per (cohort, month, customer) first, then counted: a hash aggregate that
    # PostgreSQL runs in parallel, instead of a sort-based count(DISTINCT) per group.
    ordered = (
        select(
            month_index(Profile.first_order_at, dialect).label("cohort"),
            month_index(Order.placed_at, dialect).label("month"),
            Profile.id,
        )
        .join(Order, Order.profile_id == Profile.id)
        .where(
            *acquired(installation_id, period, channel, source),
            Order.installation_id == installation_id,
            active_order(),
            Order.placed_at >= period.start,
            Order.placed_at < now,
        )
        .distinct()
        .subquery()
    )
    rows = await session.execute(
        select(ordered.c.cohort, ordered.c.month, func.count()).group_by(
            ordered.c.cohort, ordered.c.month
        )
    )
    return list(rows)
