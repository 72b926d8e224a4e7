"""Cohort retention: customers grouped by the month of their first order.

A cohort is every customer whose first active order (`Profile.first_order_at`) falls in that
UTC month; cohorts are those starting in the period. Month k of a cohort is the share of
its customers with an active order in the k-th calendar month after it (k = 0 is the
cohort month itself, so 100 %), observed up to `now`. Filters: the profile's channel and
first-touch source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

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
    dialect = dialect_of(session)
    sizes = await cohort_sizes(session, installation_id, period, channel=channel, source=source)
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
