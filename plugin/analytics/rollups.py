"""Rollups the funnel and cohort reports read instead of every checkout and order.

- `analytics_funnel_hourly`: the funnel's counts per checkout-start UTC hour, channel and
  source (see `FunnelHour`);
- `analytics_customer_months`: one row per customer and month with an active order, with
  the customer's cohort fields (see `CustomerMonth`).

Rows are recomputed from the source tables, never incremented: a duplicate or late
webhook recomputes the same rows to the same values. `refresh_profiles` runs after every
fold (plugin.inbox.folding.refresh_derived); it recomputes
- the funnel hours of every checkout written in the transaction, and of the checkouts of
  every order written (noted by a flush listener, so checkouts without a profile count);
- the customer months of the touched profiles, of the profiles written and of the owners
  (old and new) of every order written.
`rebuild_installation` recomputes a whole shop. Until an installation has been rebuilt once
(`RollupState`), the reports run their direct queries and nothing is maintained.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from plugin.analytics.models import CustomerMonth, FunnelHour, RollupState
from plugin.analytics.sql import active_order, count_if, dialect_of, month_index, paid_order
from plugin.commerce.models import Checkout, Order
from plugin.db.base import utcnow
from plugin.db.locks import lock_installation
from plugin.profiles.aggregates import NOT_PLACED
from plugin.profiles.models import Profile

# Saleor order statuses once goods have left the warehouse (the funnel's "fulfilled").
SHIPPED = ("PARTIALLY_FULFILLED", "FULFILLED", "PARTIALLY_RETURNED", "RETURNED")

# session.info keys: what the transaction wrote, as (installation_id or None, key).
_HOURS = "analytics_rollups.hours"
_ORDERS = "analytics_rollups.orders"
_PROFILES = "analytics_rollups.profiles"
CHUNK = 500

T = TypeVar("T")


# --- what changed -------------------------------------------------------------------------


def _values(obj: object, attribute: str) -> list[Any]:
    """The attribute's current and replaced values, without loading anything."""
    history = inspect(obj).attrs[attribute].history
    return [v for v in chain(history.added, history.unchanged, history.deleted) if v is not None]


def hour_of(moment: datetime) -> datetime:
    """The start of the moment's UTC hour."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


@event.listens_for(Session, "after_flush")
def _note_changes(session: Session, flush_context: Any) -> None:
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, Checkout):
            installation = inspect(obj).dict.get("installation_id")
            hours = session.info.setdefault(_HOURS, set())
            hours.update((installation, hour_of(v)) for v in _values(obj, "started_at"))
        elif isinstance(obj, Order):
            installation = inspect(obj).dict.get("installation_id")
            orders = session.info.setdefault(_ORDERS, set())
            orders.update((installation, v) for v in _values(obj, "saleor_id"))
            profiles = session.info.setdefault(_PROFILES, set())
            profiles.update((installation, v) for v in _values(obj, "profile_id"))
        elif isinstance(obj, Profile) and obj not in session.deleted:
            installation = inspect(obj).dict.get("installation_id")
            if (profile_id := inspect(obj).dict.get("id")) is not None:
                session.info.setdefault(_PROFILES, set()).add((installation, profile_id))


def _take(session: AsyncSession, key: str, installation_id: int) -> set[Any]:
    """The noted keys of this installation (or of an unknown one), removed from the notes."""
    noted: set[tuple[int | None, Any]] = session.info.get(key, set())
    mine = {entry for entry in noted if entry[0] in (installation_id, None)}
    session.info[key] = noted - mine
    return {value for _, value in mine}


def _chunks(values: Iterable[T]) -> Iterator[list[T]]:
    items = sorted(values)  # type: ignore[type-var]
    for n in range(0, len(items), CHUNK):
        yield items[n : n + CHUNK]


# --- the rows, computed from the source tables -------------------------------------------


def utc_hour(column: Any, dialect: str) -> ColumnElement[datetime]:
    """The start of the UTC hour, as the column type stores it (it is a GROUP BY key, so
    literals, not bound parameters)."""
    if dialect == "postgresql":
        return func.date_trunc(literal_column("'hour'"), column, literal_column("'UTC'"))
    # SQLite: the naive UTC text SQLAlchemy writes, 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return func.strftime(literal_column("'%Y-%m-%d %H:00:00.000000'"), column)


def funnel_rows(installation_id: int, dialect: str, *where: ColumnElement[bool]) -> Select[Any]:
    """`FunnelHour` rows of the checkouts matching `where` (whole hours, see the callers)."""
    ordered = Order.id.is_not(None)
    emailed = func.coalesce(Checkout.email, "") != ""
    paid = and_(ordered, paid_order())
    hour = utc_hour(Checkout.started_at, dialect)
    early = case((Order.placed_at < Checkout.started_at, Order.placed_at))
    return (
        select(
            literal(installation_id),
            hour,
            Checkout.channel_slug,
            Checkout.utm_source,
            early,
            func.count(),
            count_if(emailed),
            count_if(or_(emailed, ordered)),
            count_if(ordered),
            count_if(paid),
            count_if(and_(paid, Order.status.in_(SHIPPED))),
        )
        .select_from(Checkout)
        .outerjoin(
            Order,
            and_(
                Order.installation_id == installation_id,
                Order.saleor_id == Checkout.order_saleor_id,
                Order.status.not_in(NOT_PLACED),
            ),
        )
        .where(Checkout.installation_id == installation_id, *where)
        .group_by(hour, Checkout.channel_slug, Checkout.utm_source, early)
    )


FUNNEL_COLUMNS = (
    "installation_id",
    "hour",
    "channel",
    "source",
    "early_order_at",
    "started",
    "emailed",
    "contact",
    "ordered",
    "paid",
    "fulfilled",
)


def customer_rows(installation_id: int, dialect: str, *where: ColumnElement[bool]) -> Select[Any]:
    """`CustomerMonth` rows of the profiles matching `where`."""
    orders = (
        select(
            Profile.id.label("profile_id"),
            month_index(Order.placed_at, dialect).label("month"),
            Order.placed_at.label("placed_at"),
        )
        .join(Order, Order.profile_id == Profile.id)
        .where(
            Profile.installation_id == installation_id,
            Order.installation_id == installation_id,
            active_order(),
            *where,
        )
        .subquery()
    )
    months = (
        select(
            orders.c.profile_id,
            orders.c.month,
            func.min(orders.c.placed_at).label("first_at"),
            func.max(orders.c.placed_at).label("last_at"),
        )
        .group_by(orders.c.profile_id, orders.c.month)
        .subquery()
    )
    return select(
        literal(installation_id),
        months.c.profile_id,
        months.c.month,
        month_index(Profile.first_order_at, dialect),
        Profile.first_order_at,
        Profile.channel,
        Profile.utm_source,
        months.c.first_at,
        months.c.last_at,
    ).join(Profile, Profile.id == months.c.profile_id)


CUSTOMER_COLUMNS = (
    "installation_id",
    "profile_id",
    "month",
    "cohort",
    "first_order_at",
    "channel",
    "source",
    "first_at",
    "last_at",
)


# --- keeping them current ------------------------------------------------------------------


async def is_built(session: AsyncSession, installation_id: int) -> bool:
    return await session.get(RollupState, installation_id) is not None


async def refresh_profiles(
    session: AsyncSession, installation_id: int, profile_ids: Iterable[int]
) -> None:
    """Recompute the rows what this transaction wrote may have changed (idempotent)."""
    await session.flush()  # so the listener has seen every pending write
    hours = _take(session, _HOURS, installation_id)
    orders = _take(session, _ORDERS, installation_id)
    profiles = _take(session, _PROFILES, installation_id) | set(profile_ids)
    if not await is_built(session, installation_id):
        return
    for saleor_ids in _chunks(orders):
        started = await session.scalars(
            select(Checkout.started_at).where(
                Checkout.installation_id == installation_id,
                Checkout.order_saleor_id.in_(saleor_ids),
            )
        )
        hours.update(hour_of(moment) for moment in started)
    await refresh_funnel_hours(session, installation_id, hours)
    await refresh_customers(session, installation_id, profiles)


async def refresh_funnel_hours(
    session: AsyncSession, installation_id: int, hours: Iterable[datetime]
) -> None:
    dialect = dialect_of(session)
    for chunk in _chunks({hour_of(hour) for hour in hours}):
        await session.execute(
            delete(FunnelHour).where(
                FunnelHour.installation_id == installation_id, FunnelHour.hour.in_(chunk)
            )
        )
        ranges = [
            and_(
                Checkout.started_at >= hour,
                Checkout.started_at < hour + timedelta(hours=1),
            )
            for hour in chunk
        ]
        await session.execute(
            insert(FunnelHour).from_select(
                FUNNEL_COLUMNS, funnel_rows(installation_id, dialect, or_(*ranges))
            )
        )


async def refresh_customers(
    session: AsyncSession, installation_id: int, profile_ids: Iterable[int]
) -> None:
    dialect = dialect_of(session)
    for chunk in _chunks(set(profile_ids)):
        await session.execute(
            delete(CustomerMonth).where(
                CustomerMonth.installation_id == installation_id,
                CustomerMonth.profile_id.in_(chunk),
            )
        )
        await session.execute(
            insert(CustomerMonth).from_select(
                CUSTOMER_COLUMNS, customer_rows(installation_id, dialect, Profile.id.in_(chunk))
            )
        )


async def rebuild_installation(session: AsyncSession, installation_id: int) -> None:
    """Recompute every rollup row of the shop, then keep them current from now on."""
    await lock_installation(session, installation_id)  # no fold in between
    await session.flush()
    for key in (_HOURS, _ORDERS, _PROFILES):
        _take(session, key, installation_id)
    dialect = dialect_of(session)
    if dialect == "postgresql":  # whole-shop sorts and hashes: in memory, not on disk
        await session.execute(text("SET LOCAL work_mem = '256MB'"))
    await session.execute(delete(FunnelHour).where(FunnelHour.installation_id == installation_id))
    await session.execute(
        insert(FunnelHour).from_select(FUNNEL_COLUMNS, funnel_rows(installation_id, dialect))
    )
    await session.execute(
        delete(CustomerMonth).where(CustomerMonth.installation_id == installation_id)
    )
    await session.execute(
        insert(CustomerMonth).from_select(CUSTOMER_COLUMNS, customer_rows(installation_id, dialect))
    )
    state = await session.get(RollupState, installation_id)
    if state is None:
        session.add(RollupState(installation_id=installation_id, rebuilt_at=utcnow()))
    else:
        state.rebuilt_at = utcnow()
    await session.flush()


# --- reading them --------------------------------------------------------------------------


def whole_hours(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The bounds of the whole UTC hours inside `[start, end)`, if any."""
    first = hour_of(start)
    if first < start:
        first += timedelta(hours=1)
    last = hour_of(end)
    return (first, last) if first < last else None


async def funnel_counts(
    session: AsyncSession,
    installation_id: int,
    hours: tuple[datetime, datetime],
    order_from: datetime,
    channel: str | None,
    source: str | None,
) -> list[int]:
    """The funnel's five counts for the checkouts started in the whole hours `hours`, their
    orders counted when placed at or after `order_from` (≤ the first hour)."""
    counts = or_(FunnelHour.early_order_at.is_(None), FunnelHour.early_order_at >= order_from)

    def total(column: Any) -> Any:
        return func.coalesce(func.sum(column), 0)

    query = select(
        total(FunnelHour.started),
        total(case((counts, FunnelHour.contact), else_=FunnelHour.emailed)),
        total(case((counts, FunnelHour.ordered), else_=0)),
        total(case((counts, FunnelHour.paid), else_=0)),
        total(case((counts, FunnelHour.fulfilled), else_=0)),
    ).where(
        FunnelHour.installation_id == installation_id,
        FunnelHour.hour >= hours[0],
        FunnelHour.hour < hours[1],
    )
    if channel is not None:
        query = query.where(FunnelHour.channel == channel)
    if source is not None:
        query = query.where(FunnelHour.source == source)
    return [int(n) for n in (await session.execute(query)).one()]


async def cohort_activity(
    session: AsyncSession,
    installation_id: int,
    start: datetime,
    end: datetime,
    now: datetime,
    channel: str | None,
    source: str | None,
) -> Sequence[Any]:
    """(cohort, month, customers) with an active order in `[start, now)`, for customers
    whose first order is in `[start, end)`. Exact unless `start` and `now` share a month
    (the caller then asks the orders)."""
    query = (
        select(CustomerMonth.cohort, CustomerMonth.month, func.count())
        .where(
            CustomerMonth.installation_id == installation_id,
            CustomerMonth.first_order_at >= start,
            CustomerMonth.first_order_at < end,
            CustomerMonth.last_at >= start,
            CustomerMonth.first_at < now,
        )
        .group_by(CustomerMonth.cohort, CustomerMonth.month)
    )
    if channel is not None:
        query = query.where(CustomerMonth.channel == channel)
    if source is not None:
        query = query.where(CustomerMonth.source == source)
    return list(await session.execute(query))
