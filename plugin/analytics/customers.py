"""How the customers acquired in a period behave: repeat purchases, timing, checks, churn.

"Acquired in the period" = first active order (`Profile.first_order_at`) in it; their orders
are then followed up to now (profile aggregates are current). Filters: the profile's
channel and first-touch source. Definitions:
- repeat-purchase rate: share of them with two active orders or more;
- time to first purchase: days from the start of the relationship to the first order; the
  start is the earlier of the account's `date_joined` and the first checkout, among those
  not after the first order (a guest who registers after buying starts at the checkout);
- average interval: Σ (last − first order) ÷ Σ (orders − 1) over repeat customers, i.e.
  the mean gap between two consecutive orders;
- average checks (per currency, over paid orders like the profile's average check): the
  first order; orders within 30 days of the first order; within 90 days (both windows
  include the first order and may reach past the period's end);
- churn: a customer has churned when their last order is more than `churn_days` (90) days
  before now; churn speed is that share per first-order month (`churn_by_cohort`): older
  cohorts have had more time to churn, so the slope of the curve is the speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.analytics.cohorts import month_start
from plugin.analytics.period import Period, money_average, share
from plugin.analytics.sql import (
    acquired,
    count_if,
    days_between,
    dialect_of,
    month_index,
    paid_order,
    sum_money,
)
from plugin.commerce.models import Checkout, Order
from plugin.db.base import utcnow
from plugin.profiles.models import Profile

CHURN_DAYS = 90
MONTH_DAYS = 30
QUARTER_DAYS = 90


@dataclass(frozen=True)
class AverageChecks:
    currency: str
    first_order: Decimal | None
    first_order_count: int
    first_month: Decimal | None
    first_month_count: int
    first_quarter: Decimal | None
    first_quarter_count: int


@dataclass(frozen=True)
class CustomerBehaviour:
    period: Period
    channel: str | None
    source: str | None
    customers: int
    repeat_customers: int
    repeat_rate: float | None
    days_to_first_purchase: float | None
    days_to_first_purchase_measured: int  # customers with a known start
    days_between_orders: float | None
    average_checks: tuple[AverageChecks, ...]
    churn_days: int
    churned: int
    churn_rate: float | None


@dataclass(frozen=True)
class CohortChurn:
    month: date
    customers: int
    churned: int
    churn_rate: float | None


async def customer_behaviour(
    session: AsyncSession,
    installation_id: int,
    period: Period,
    *,
    channel: str | None = None,
    source: str | None = None,
    churn_days: int = CHURN_DAYS,
    now: datetime | None = None,
) -> CustomerBehaviour:
    now = now or utcnow()
    dialect = dialect_of(session)
    where = acquired(installation_id, period, channel, source)
    repeat = Profile.orders_count >= 2
    span = days_between(Profile.last_order_at, Profile.first_order_at, dialect)
    customers, repeaters, spans, gaps, churned = (
        await session.execute(
            select(
                func.count(),
                count_if(repeat),
                func.sum(case((repeat, span))),
                func.sum(case((repeat, Profile.orders_count - 1))),
                count_if(Profile.last_order_at < now - timedelta(days=churn_days)),
            ).where(*where)
        )
    ).one()
    days_to_first, measured = await _days_to_first_purchase(
        session, installation_id, where, dialect
    )
    return CustomerBehaviour(
        period,
        channel,
        source,
        customers=int(customers),
        repeat_customers=int(repeaters),
        repeat_rate=share(int(repeaters), int(customers)),
        days_to_first_purchase=days_to_first,
        days_to_first_purchase_measured=measured,
        days_between_orders=round(float(spans) / int(gaps), 2) if gaps else None,
        average_checks=await _average_checks(session, installation_id, where, dialect),
        churn_days=churn_days,
        churned=int(churned),
        churn_rate=share(int(churned), int(customers)),
    )


async def _days_to_first_purchase(
    session: AsyncSession, installation_id: int, where: list[ColumnElement[bool]], dialect: str
) -> tuple[float | None, int]:
    first_checkout = (
        select(Checkout.profile_id, func.min(Checkout.started_at).label("started_at"))
        .join(Profile, Profile.id == Checkout.profile_id)
        .where(
            *where,
            Checkout.installation_id == installation_id,
            Checkout.started_at <= Profile.first_order_at,
        )
        .group_by(Checkout.profile_id)
        .subquery()
    )
    checkout = first_checkout.c.started_at
    joined_first = Profile.date_joined <= Profile.first_order_at
    start = case(
        (and_(joined_first, checkout.is_not(None), checkout < Profile.date_joined), checkout),
        (joined_first, Profile.date_joined),
        else_=checkout,
    )
    days = days_between(Profile.first_order_at, start, dialect)
    average, measured = (
        await session.execute(
            select(func.avg(days), func.count(days))
            .select_from(Profile)
            .outerjoin(first_checkout, first_checkout.c.profile_id == Profile.id)
            .where(*where)
        )
    ).one()
    return (round(float(average), 2) if average is not None else None), int(measured)


async def _average_checks(
    session: AsyncSession, installation_id: int, where: list[ColumnElement[bool]], dialect: str
) -> tuple[AverageChecks, ...]:
    after_first = days_between(Order.placed_at, Profile.first_order_at, dialect)
    windows = {
        "first": Order.placed_at == Profile.first_order_at,
        "month": after_first < MONTH_DAYS,
        "quarter": after_first < QUARTER_DAYS,
    }
    columns = []
    for condition in windows.values():
        columns += [sum_money(Order.total_gross, condition), count_if(condition)]
    rows = await session.execute(
        select(Order.currency, *columns)
        .join(Profile, Profile.id == Order.profile_id)
        .where(
            *where,
            Order.installation_id == installation_id,
            paid_order(),
            Order.placed_at >= Profile.first_order_at,
        )
        .group_by(Order.currency)
        .order_by(Order.currency)
    )
    checks = []
    for currency, first, n_first, month, n_month, quarter, n_quarter in rows:
        checks.append(
            AverageChecks(
                currency,
                money_average(Decimal(first), n_first),
                int(n_first),
                money_average(Decimal(month), n_month),
                int(n_month),
                money_average(Decimal(quarter), n_quarter),
                int(n_quarter),
            )
        )
    return tuple(checks)


async def churn_by_cohort(
    session: AsyncSession,
    installation_id: int,
    period: Period,
    *,
    channel: str | None = None,
    source: str | None = None,
    churn_days: int = CHURN_DAYS,
    now: datetime | None = None,
) -> tuple[CohortChurn, ...]:
    """Per first-order month: customers, and how many have churned by now."""
    now = now or utcnow()
    customers = (
        select(
            month_index(Profile.first_order_at, dialect_of(session)).label("cohort"),
            (Profile.last_order_at < now - timedelta(days=churn_days)).label("churned"),
        )
        .where(*acquired(installation_id, period, channel, source))
        .subquery()
    )
    rows = await session.execute(
        select(customers.c.cohort, func.count(), count_if(customers.c.churned))
        .group_by(customers.c.cohort)
        .order_by(customers.c.cohort)
    )
    return tuple(
        CohortChurn(month_start(int(cohort)), int(n), int(gone), share(int(gone), int(n)))
        for cohort, n, gone in rows
    )
