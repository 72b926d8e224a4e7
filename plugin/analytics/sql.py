"""SQL pieces the reports share, and the two places where SQLite and PostgreSQL differ.

The order definitions are those of the profile aggregates (plugin/profiles/aggregates.py):
placed = not a draft or expired; active = placed and not cancelled; paid = active and
fully charged; revenue = money kept, Σ max(charged − refunded, 0) over every order whatever
its status, as the profile's total spent (a cancelled order whose charge was never refunded
still counts; a draft or expired one has nothing charged in practice). Counts of orders and
customers are of active orders only: a report reads `counted_order()` rows, counts with
`active_order()` and adds up `money_kept()`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, and_, case, cast, extract, func, or_
from sqlalchemy import type_coerce as coerce
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.analytics.period import Period
from plugin.commerce.models import Order
from plugin.db.base import Money
from plugin.profiles.aggregates import NOT_PLACED, PAID_CHARGE_STATUSES
from plugin.profiles.models import Profile


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def month_index(column: Any, dialect: str) -> ColumnElement[int]:
    """year × 12 + month − 1 of a UTC timestamp: months apart is a plain subtraction."""
    if dialect == "postgresql":
        # timestamptz → UTC wall time, whatever the server's TimeZone setting is.
        utc = func.timezone("UTC", column)
        return cast(extract("year", utc) * 12 + extract("month", utc) - 1, Integer)
    # SQLite stores the naive UTC text 'YYYY-MM-DD HH:MM:SS…'.
    year = cast(func.strftime("%Y", column), Integer)
    return year * 12 + cast(func.strftime("%m", column), Integer) - 1


def days_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return cast(extract("epoch", later - earlier), Float) / 86400.0
    return cast(func.julianday(later) - func.julianday(earlier), Float)


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count(case((condition, 1)))


def sum_money(value: Any, condition: ColumnElement[bool] | None = None) -> Any:
    """Σ value (where condition), typed as money so both drivers hand back a Decimal."""
    if condition is not None:
        value = case((condition, value), else_=0)
    return coerce(func.coalesce(func.sum(value), 0), Money)


def active_order() -> ColumnElement[bool]:
    """An order that counts as one: placed and not cancelled."""
    return and_(Order.status.not_in(NOT_PLACED), Order.status != "CANCELED")


def keeps_money() -> ColumnElement[bool]:
    """An order the shop kept something of, whatever its status."""
    return Order.total_charged > Order.total_refunded


def counted_order() -> ColumnElement[bool]:
    """An order some figure counts: active ones (counts, money) and any other the shop kept
    money from (money only)."""
    return or_(active_order(), keeps_money())


def active_customer() -> ColumnElement[int]:
    """The number of distinct customers with an active order among the rows."""
    return func.count(func.distinct(case((active_order(), Order.profile_id))))


def paid_order() -> ColumnElement[bool]:
    return and_(
        active_order(), or_(Order.is_paid.is_(True), Order.charge_status.in_(PAID_CHARGE_STATUSES))
    )


def money_kept() -> ColumnElement[Any]:
    """What the shop kept of an order, whatever its status: charged − refunded, ≥ 0."""
    kept = Order.total_charged - Order.total_refunded
    return coerce(case((kept > 0, kept), else_=0), Money)


def in_period(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


def acquired(
    installation_id: int, period: Period | None, channel: str | None, source: str | None
) -> list[ColumnElement[bool]]:
    """Customers whose first order falls in the period, of one channel and first-touch source.

    The channel is the profile's (that of the customer's latest order): a customer is
    counted once, in the channel they buy in now.
    """
    where: list[ColumnElement[bool]] = [
        Profile.installation_id == installation_id,
        Profile.first_order_at.is_not(None),
    ]
    if period is not None:
        where.append(in_period(Profile.first_order_at, period))
    if channel is not None:
        where.append(Profile.channel == channel)
    if source is not None:
        where.append(Profile.utm_source == source)
    return where
