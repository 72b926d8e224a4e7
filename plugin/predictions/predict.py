"""From a shop's stored model and a customer's order figures to the four predictions.

One vectorised path serves the bulk refit (a million rows at once) and the per-fold
update (one profile), so both always write the same numbers.

- Fitted model (BG/NBD + Gamma-Gamma): p_alive = P(still active); orders = expected
  orders in the next 365 days (already weighted by p_alive); value = orders × the
  expected order value; next order = now + the median wait *if still active*.
- Fallback (shop too thin for a model), from the customer's own rhythm, interval
  I = (last − first) / (orders − 1): each order is taken to be the last with chance
  1 / (orders + 1) and, while active, orders arrive as a Poisson process every I days,
  so p_alive = (1 − q)·e^(−d/I) / ((1 − q)·e^(−d/I) + q) for d days of silence;
  orders = p_alive × 365 / I; value = orders × average check; next order = the first
  date last + k·I (k ≥ 1) not before now.
- Orders less than a day apart are one purchase (a second order placed minutes after the
  first is a forgotten item, not a rhythm): a customer counts at most one purchase per day
  from their first to their last order, min(orders, ⌊last − first in days⌋ + 1), so two
  orders one second apart are one purchase, not "next order tomorrow".
- One-purchase customers get no p_alive and no next date (one order shows no rhythm, and
  BG/NBD would call them active for ever); under a fitted model they still get expected
  orders and value. Customers with no order get nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from numpy.typing import NDArray

from plugin.predictions import bgnbd, gamma_gamma
from plugin.predictions.bgnbd import BgNbdParams
from plugin.predictions.gamma_gamma import GammaGammaParams
from plugin.predictions.models import PredictionModel

Array = NDArray[np.float64]

HORIZON_DAYS = 365.0
MIN_ORDERS = 2  # for p_alive and a next-order date
DAY = 86400.0

# Stored values, rounded so that a refit with unchanged inputs writes nothing.
Values = tuple[float | None, float | None, Decimal | None, datetime | None]


@dataclass(frozen=True)
class ShopModel:
    """What the stored PredictionModel says; `purchases` None means the fallback."""

    purchases: BgNbdParams | None
    spend: GammaGammaParams | None = None

    @property
    def fallback(self) -> bool:
        return self.purchases is None

    @classmethod
    def from_row(cls, row: PredictionModel | None) -> ShopModel:
        params = row.parameters if row is not None else {}
        if params.get("method") != "bgnbd":
            return cls(None)
        spend = params.get("gamma_gamma")
        return cls(
            BgNbdParams(*(float(params[k]) for k in ("r", "alpha", "a", "b"))),
            GammaGammaParams(*(float(spend[k]) for k in ("p", "q", "gamma"))) if spend else None,
        )

    def parameters(self) -> dict[str, Any]:
        if self.purchases is None:
            return {"method": "fallback"}
        return {
            "method": "bgnbd",
            "time_unit": "days",
            **asdict(self.purchases),
            "gamma_gamma": asdict(self.spend) if self.spend else None,
        }


@dataclass(frozen=True)
class Inputs:
    """Per customer: orders, paid orders, first/last order as epoch seconds (NaN when
    none), average check and money kept, in the profile's main currency."""

    orders: Array
    paid: Array
    first_ts: Array
    last_ts: Array
    average_check: Array
    spent: Array

    @classmethod
    def of(cls, columns: Sequence[Sequence[Any]]) -> Inputs:
        """From six columns: orders, paid orders, first and last order time, average
        check, money kept (database values, as on the profile)."""
        orders, paid, first, last, check, spent = columns
        return cls(
            floats(orders),
            floats(paid),
            timestamps(first),
            timestamps(last),
            floats(check, default=0.0),
            floats(spent, default=0.0),
        )


def floats(values: Sequence[Any], default: float = math.nan) -> Array:
    return np.fromiter(
        (default if v is None else float(v) for v in values), dtype=np.float64, count=len(values)
    )


def timestamps(values: Sequence[datetime | None]) -> Array:
    """Epoch seconds, NaN for None. Naive values are UTC (SQLite, read raw in bulk); both
    branches compute (value − epoch).total_seconds(), bit for bit what `.timestamp()`
    gives the profile's aware value, so the bulk and the fold paths agree exactly."""
    return np.fromiter(
        (
            math.nan
            if v is None
            else (v - _NAIVE_EPOCH).total_seconds()
            if v.tzinfo is None
            else v.timestamp()
            for v in values
        ),
        dtype=np.float64,
        count=len(values),
    )


_NAIVE_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Predictions:
    """Rounded, NaN for NULL; `next_ts` in whole epoch seconds."""

    p_alive: Array
    orders_12m: Array
    value_12m: Array
    next_ts: Array

    def values(self, i: int) -> Values:
        def opt(a: Array) -> float | None:
            return None if math.isnan(a[i]) else float(a[i])

        value, next_ts = opt(self.value_12m), opt(self.next_ts)
        return (
            opt(self.p_alive),
            opt(self.orders_12m),
            None if value is None else Decimal(f"{value:.2f}"),
            None if next_ts is None else datetime.fromtimestamp(next_ts, UTC),
        )


@dataclass(frozen=True)
class Summary:
    """The model's view of each customer, in days: x repeat purchases, t_x first to last
    order, T first order to now, and the days since the last order. A purchase is a day
    with orders (see the module's doc): `purchases` = x + 1 for buyers."""

    buyer: NDArray[np.bool_]
    purchases: Array
    x: Array
    t_x: Array
    T: Array

    @property
    def recency(self) -> Array:
        result: Array = self.T - self.t_x
        return result


def summarise(inputs: Inputs, now: datetime) -> Summary:
    now_ts = now.timestamp()
    orders = inputs.orders
    buyer = (orders >= 1) & ~np.isnan(inputs.first_ts) & ~np.isnan(inputs.last_ts)
    # Guard against clocks: T ≥ t_x ≥ 0 and T > 0.
    T = np.maximum((now_ts - np.where(buyer, inputs.first_ts, now_ts)) / DAY, 1e-6)
    t_x = (np.where(buyer, inputs.last_ts, 0.0) - np.where(buyer, inputs.first_ts, 0.0)) / DAY
    t_x = np.clip(t_x, 0.0, T)
    purchases = np.where(buyer, np.minimum(orders, np.floor(t_x) + 1.0), 0.0)
    return Summary(buyer, purchases, np.where(buyer, purchases - 1.0, 0.0), t_x, T)


def predict(model: ShopModel, inputs: Inputs, now: datetime) -> Predictions:
    now_ts = now.timestamp()
    orders = inputs.orders
    summary = summarise(inputs, now)
    buyer, x, t_x, T, recency = summary.buyer, summary.x, summary.t_x, summary.T, summary.recency
    purchases = summary.purchases
    repeat = buyer & (purchases >= MIN_ORDERS)
    check = np.where(
        (inputs.paid > 0) & (inputs.average_check > 0),
        inputs.average_check,
        inputs.spent / np.maximum(orders, 1.0),
    )
    nan = np.full_like(orders, np.nan)
    if model.purchases is None:
        interval = np.maximum(t_x / np.maximum(purchases - 1.0, 1.0), 1.0)
        q = 1.0 / (purchases + 1.0)
        silence = np.exp(-recency / interval)
        alive = (1 - q) * silence / ((1 - q) * silence + q)
        expected = alive * HORIZON_DAYS / interval
        wait = np.maximum(np.ceil(recency / interval), 1.0) * interval - recency
        p_alive = np.where(repeat, alive, nan)
        orders_12m = np.where(repeat, expected, nan)
        value = np.where(repeat, expected * check, nan)
        wait = np.where(repeat, np.maximum(wait, 0.0), nan)
    else:
        alive = bgnbd.p_alive(model.purchases, x, t_x, T)
        expected = bgnbd.expected_purchases(model.purchases, HORIZON_DAYS, x, t_x, T)
        per_order = (
            gamma_gamma.expected_order_value(model.spend, inputs.paid, inputs.average_check)
            if model.spend is not None
            else check
        )
        p_alive = np.where(repeat, alive, nan)
        orders_12m = np.where(buyer, expected, nan)
        value = np.where(buyer, expected * np.maximum(per_order, 0.0), nan)
        wait = np.where(repeat, bgnbd.median_days_to_next_purchase(model.purchases, x, T), nan)
    return Predictions(
        _rounded(p_alive, 4, upper=1.0),
        _rounded(orders_12m, 3),
        _rounded(value, 2),
        np.ceil(now_ts + np.minimum(wait, 36500.0) * DAY),
    )


def _rounded(values: Array, decimals: int, upper: float | None = None) -> Array:
    clipped = np.clip(values, 0.0, np.inf if upper is None else upper)
    return np.asarray(np.round(clipped, decimals), dtype=np.float64)
