"""RFM: recency, frequency and monetary scores (1–5), the named cells, and the 5×5 matrix.

Scores compare a customer with the other buyers of the same shop and currency:
- the boundaries are the 20/40/60/80 % quantiles of days since the last order, number of
  orders and money kept (as on the profile: active orders and their dates; money kept of
  every order, a cancelled order's unrefunded charge included);
- a score is 1 + how many boundaries the customer beats (fewer days, more orders, more
  money), so equal values always get equal scores;
- a shop with fewer than `SMALL_BASE` buyers in a currency uses fixed boundaries instead
  (30/60/120/240 days; 2–5 orders; 0.4×–3× the average spend), so RFM works from the
  first order.
A merchant may set any dimension by hand (`plugin/segments/rfm_settings.py`).
Boundaries are stored per shop and currency by the full refresh; each fold scores the
customers it touched against them, so a new order moves a customer's cell at once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, type_coerce, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.models import Profile
from plugin.saleor.models import Installation
from plugin.segments.models import RfmBoundaries
from plugin.segments.rfm_settings import RfmSettings, rfm_settings_of

SMALL_BASE = 20
QUANTILES = (0.2, 0.4, 0.6, 0.8)
DEFAULT_RECENCY_DAYS = (240.0, 120.0, 60.0, 30.0)  # beating a boundary: fewer days than it
DEFAULT_FREQUENCY = (1.0, 2.0, 3.0, 4.0)  # beating a boundary: more orders than it
DEFAULT_MONETARY_FACTORS = (0.4, 0.75, 1.5, 3.0)  # × the average spend of the shop

# (pattern over "<R><F>", name), first match wins; the classic RFM segment map.
CELLS: tuple[tuple[str, str], ...] = (
    ("5[45]", "Champions"),
    ("[34][45]", "Loyal"),
    ("[45][23]", "Potential loyalists"),
    ("51", "New"),
    ("41", "Promising"),
    ("33", "Need attention"),
    ("3[12]", "About to sleep"),
    ("[12]5", "Can't lose"),
    ("[12][34]", "At risk"),
    ("11", "Lost"),
    ("[12][12]", "Hibernating"),
)
CELL_NAMES = tuple(dict.fromkeys(name for _, name in CELLS))


def cell_name(recency: int, frequency: int) -> str:
    key = f"{recency}{frequency}"
    for pattern, name in CELLS:
        if re.fullmatch(pattern, key):
            return name
    raise ValueError(f"no RFM cell for {key}")


# (buyers, their average total spent) of one currency
Census = tuple[int, Any]


@dataclass(frozen=True)
class Boundaries:
    recency_days: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[Decimal, ...]
    buyers: int
    quantiles: bool  # False: the small-base defaults

    def score(self, days: float, orders: int, spent: Decimal) -> tuple[int, int, int]:
        recency = 1 + sum(days < b for b in self.recency_days)
        frequency = 1 + sum(orders > b for b in self.frequency)
        monetary = 1 + sum(spent > b for b in self.monetary)
        return recency, frequency, monetary


def _days(now: datetime, last_order_at: datetime) -> float:
    return (now - last_order_at).total_seconds() / 86400


def _quantile(worst_first: list[Any], q: float) -> Any:
    """The best value among the worst `q` of the base: beating it puts a customer above."""
    return worst_first[max(0, math.ceil(q * len(worst_first)) - 1)]


async def compute_boundaries(
    session: AsyncSession,
    installation_id: int,
    currency: str,
    now: datetime,
    *,
    census: Census | None = None,
) -> Boundaries:
    """The shop's boundaries for one currency: quantiles computed in the database, where
    the merchant did not set a dimension by hand. `census`: the currency's buyers and
    average spend when the caller has counted them already."""
    preferences = await session.scalar(
        select(Installation.preferences).where(Installation.id == installation_id)
    )
    computed = await _computed_boundaries(session, installation_id, currency, now, census)
    return _overridden(computed, rfm_settings_of(preferences), currency)


def _buyers_filter(installation_id: int) -> tuple[Any, ...]:
    return (
        Profile.installation_id == installation_id,
        Profile.orders_count > 0,
        Profile.last_order_at.is_not(None),
    )


async def shop_census(session: AsyncSession, installation_id: int) -> dict[str, Census]:
    """Every currency the shop's customers have, with its buyers and their average spend,
    in one scan."""
    buying = and_(*_buyers_filter(installation_id)[1:])
    rows = await session.execute(
        select(
            Profile.currency,
            func.count(Profile.id).filter(buying),
            func.avg(Profile.total_spent).filter(buying),
        )
        .where(Profile.installation_id == installation_id, Profile.currency.is_not(None))
        .group_by(Profile.currency)
    )
    return {str(c): (int(n), a) for c, n, a in rows if c}


def _overridden(boundaries: Boundaries, settings: RfmSettings, currency: str) -> Boundaries:
    return replace(
        boundaries,
        recency_days=settings.recency_days or boundaries.recency_days,
        frequency=settings.frequency or boundaries.frequency,
        monetary=settings.monetary.get(currency, boundaries.monetary),
    )


async def _computed_boundaries(
    session: AsyncSession,
    installation_id: int,
    currency: str,
    now: datetime,
    census: Census | None = None,
) -> Boundaries:
    buyers_filter = (*_buyers_filter(installation_id), Profile.currency == currency)
    if census is None:
        census = (
            await session.execute(
                select(func.count(Profile.id), func.avg(Profile.total_spent)).where(*buyers_filter)
            )
        ).one()
    buyers, average = census
    if buyers < SMALL_BASE:
        mean = Decimal(str(average or 0))
        return Boundaries(
            DEFAULT_RECENCY_DAYS,
            DEFAULT_FREQUENCY,
            tuple(
                (mean * Decimal(str(f))).quantize(Decimal("0.01")) for f in DEFAULT_MONETARY_FACTORS
            ),
            buyers,
            quantiles=False,
        )
    last_orders, orders, spent = await _quantiles(
        session,
        (Profile.last_order_at, Profile.orders_count, Profile.total_spent),
        buyers_filter,
        buyers,
    )
    return Boundaries(
        tuple(_days(now, ts) for ts in last_orders),  # oldest last order first: worst first
        tuple(float(v) for v in orders),
        tuple(Decimal(str(v)) for v in spent),
        buyers,
        quantiles=True,
    )


async def _quantiles(
    session: AsyncSession, columns: tuple[Any, ...], where: tuple[Any, ...], buyers: int
) -> list[list[Any]]:
    """For each column, the value at position ceil(q·n) of the ascending order, for each
    quantile q (PostgreSQL: one scan, `percentile_disc` per column; elsewhere one indexed
    look-up per quantile)."""
    if session.get_bind().dialect.name == "postgresql":
        row = (
            await session.execute(
                select(
                    *(
                        type_coerce(
                            func.percentile_disc(postgresql.array(QUANTILES)).within_group(column),
                            postgresql.ARRAY(column.type),
                        )
                        for column in columns
                    )
                ).where(*where)
            )
        ).one()
        return [list(values or []) for values in row]
    found: list[list[Any]] = []
    for column in columns:
        values = []
        for q in QUANTILES:
            offset = max(0, math.ceil(q * buyers) - 1)
            values.append(
                await session.scalar(
                    select(column).where(*where).order_by(column).offset(offset).limit(1)
                )
            )
        found.append(values)
    return found


async def store_boundaries(
    session: AsyncSession,
    installation_id: int,
    currency: str,
    boundaries: Boundaries,
    now: datetime,
) -> None:
    row = await session.scalar(
        select(RfmBoundaries).where(
            RfmBoundaries.installation_id == installation_id, RfmBoundaries.currency == currency
        )
    )
    if row is None:
        row = RfmBoundaries(installation_id=installation_id, currency=currency)
        session.add(row)
    row.recency_days = list(boundaries.recency_days)
    row.frequency = list(boundaries.frequency)
    row.monetary = [str(m) for m in boundaries.monetary]
    row.buyers = boundaries.buyers
    row.quantiles = boundaries.quantiles
    row.computed_at = now


def _loaded(row: RfmBoundaries) -> Boundaries:
    return Boundaries(
        tuple(float(v) for v in row.recency_days),
        tuple(float(v) for v in row.frequency),
        tuple(Decimal(v) for v in row.monetary),
        row.buyers,
        row.quantiles,
    )


async def boundaries_for(
    session: AsyncSession, installation_id: int, currency: str, now: datetime
) -> Boundaries:
    """The stored boundaries, or freshly computed ones for a currency never refreshed."""
    row = await session.scalar(
        select(RfmBoundaries).where(
            RfmBoundaries.installation_id == installation_id, RfmBoundaries.currency == currency
        )
    )
    if row is not None:
        return _loaded(row)
    boundaries = await compute_boundaries(session, installation_id, currency, now)
    await store_boundaries(session, installation_id, currency, boundaries, now)
    return boundaries


def apply_scores(profile: Profile, boundaries: Boundaries | None, now: datetime) -> bool:
    """Set the profile's R, F, M and cell; True when anything changed."""
    if boundaries is None or not profile.orders_count or profile.last_order_at is None:
        scores: tuple[int | None, int | None, int | None] = (None, None, None)
        cell = None
    else:
        r, f, m = boundaries.score(
            _days(now, profile.last_order_at), profile.orders_count, Decimal(profile.total_spent)
        )
        scores, cell = (r, f, m), cell_name(r, f)
    before = (profile.rfm_recency, profile.rfm_frequency, profile.rfm_monetary, profile.rfm_cell)
    profile.rfm_recency, profile.rfm_frequency, profile.rfm_monetary = scores
    profile.rfm_cell = cell
    return before != (*scores, cell)


async def score_profiles(
    session: AsyncSession, installation_id: int, profiles: list[Profile], now: datetime
) -> None:
    """After a fold: score the touched customers against their shop's stored boundaries."""
    cache: dict[str, Boundaries] = {}
    for profile in profiles:
        boundaries = None
        if profile.currency and profile.orders_count:
            if profile.currency not in cache:
                cache[profile.currency] = await boundaries_for(
                    session, installation_id, profile.currency, now
                )
            boundaries = cache[profile.currency]
        apply_scores(profile, boundaries, now)


async def refresh_rfm(session: AsyncSession, installation_id: int, now: datetime) -> int:
    """Recompute the boundaries of every currency and rescore every customer in the
    database; returns how many rows changed (only those are written)."""
    changed = 0
    for currency, census in sorted((await shop_census(session, installation_id)).items()):
        boundaries = await compute_boundaries(
            session, installation_id, currency, now, census=census
        )
        await store_boundaries(session, installation_id, currency, boundaries, now)
        changed += await _rescore(session, installation_id, currency, boundaries, now)
    cleared = await session.execute(
        update(Profile)
        .where(
            Profile.installation_id == installation_id,
            Profile.rfm_recency.is_not(None),
            or_(
                Profile.orders_count == 0,
                Profile.last_order_at.is_(None),
                Profile.currency.is_(None),
            ),
        )
        .values(rfm_recency=None, rfm_frequency=None, rfm_monetary=None, rfm_cell=None)
        .execution_options(synchronize_session=False)
    )
    changed += _rowcount(cleared)
    session.expire_all()  # the ORM objects in this session no longer show the scores
    return changed


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def _rescore(
    session: AsyncSession,
    installation_id: int,
    currency: str,
    boundaries: Boundaries,
    now: datetime,
) -> int:
    def beats(condition_per_boundary: list[Any]) -> Any:
        return 1 + sum(case((c, 1), else_=0) for c in condition_per_boundary)

    last: Any = Profile.last_order_at
    recency = beats(
        [last > literal(now - timedelta(days=d), last.type) for d in boundaries.recency_days]
    )
    frequency = beats([Profile.orders_count > literal(b) for b in boundaries.frequency])
    monetary = beats(
        [Profile.total_spent > literal(m, Profile.total_spent.type) for m in boundaries.monetary]
    )
    cell = case(
        {r * 10 + f: cell_name(r, f) for r in range(1, 6) for f in range(1, 6)},
        value=recency * 10 + frequency,
        else_=None,
    )
    result = await session.execute(
        update(Profile)
        .where(
            Profile.installation_id == installation_id,
            Profile.currency == currency,
            Profile.orders_count > 0,
            last.is_not(None),
            or_(
                Profile.rfm_recency.is_distinct_from(recency),
                Profile.rfm_frequency.is_distinct_from(frequency),
                Profile.rfm_monetary.is_distinct_from(monetary),
                Profile.rfm_cell.is_distinct_from(cell),
            ),
        )
        .values(rfm_recency=recency, rfm_frequency=frequency, rfm_monetary=monetary, rfm_cell=cell)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


@dataclass(frozen=True)
class MatrixCell:
    recency: int
    frequency: int
    name: str
    customers: int
    revenue: Decimal


async def rfm_matrix(
    session: AsyncSession, installation_id: int, currency: str
) -> list[MatrixCell]:
    """The 5×5 R×F grid with customers and money kept per cell (empty cells included)."""
    rows = (
        await session.execute(
            select(
                Profile.rfm_recency,
                Profile.rfm_frequency,
                func.count(Profile.id),
                func.coalesce(func.sum(Profile.total_spent), 0),
            )
            .where(
                Profile.installation_id == installation_id,
                Profile.currency == currency,
                Profile.rfm_recency.is_not(None),
            )
            .group_by(Profile.rfm_recency, Profile.rfm_frequency)
        )
    ).all()
    found = {(r, f): (n, Decimal(s)) for r, f, n, s in rows}
    return [
        MatrixCell(r, f, cell_name(r, f), *found.get((r, f), (0, Decimal(0))))
        for r in range(5, 0, -1)
        for f in range(1, 6)
    ]
