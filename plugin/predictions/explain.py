"""Predictions in plain words, from the same numbers the profile shows.

Staff act on a prediction only if they see where it comes from: the customer's own
orders, the shop's model (or the fallback, said so), and what "likely active" means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from plugin.db.base import utcnow
from plugin.predictions.models import PredictionModel
from plugin.predictions.predict import DAY, Inputs, ShopModel, predict, summarise
from plugin.profiles.models import Profile


@dataclass(frozen=True)
class Explanation:
    method: str  # "model", "fallback" or "none" (no order)
    orders: int
    days_since_last: int | None
    interval_days: float | None  # the customer's own average, with two orders or more
    p_alive: float | None
    days_to_next: int | None
    orders_12m: float | None
    value_12m: Decimal | None
    currency: str | None
    text: str


def explain(profile: Profile, model: PredictionModel | None, now: datetime | None = None) -> str:
    """One paragraph for the profile page; `model` is the shop's model for the profile's
    currency (None while there is none: the fallback)."""
    return explanation(profile, model, now).text


def explanation(
    profile: Profile, model: PredictionModel | None, now: datetime | None = None
) -> Explanation:
    now = now or utcnow()
    orders = profile.orders_count or 0
    if not orders or profile.currency is None or profile.last_order_at is None:
        nothing = "No orders yet: no prediction."
        return Explanation("none", orders, None, None, None, None, None, None, None, nothing)
    shop = ShopModel.from_row(model)
    inputs = Inputs.of(
        [
            [orders],
            [profile.paid_orders_count],
            [profile.first_order_at],
            [profile.last_order_at],
            [profile.average_order_value],
            [profile.total_spent],
        ]
    )
    p_alive, orders_12m, value_12m, next_at = predict(shop, inputs, now).values(0)
    summary = summarise(inputs, now)
    since = int(summary.recency[0])
    purchases = int(summary.purchases[0])  # days with orders, as the model counts them
    interval = round(float(summary.t_x[0]) / (purchases - 1), 1) if purchases > 1 else None
    to_next = None if next_at is None else math.ceil((next_at - now).total_seconds() / DAY)
    currency = profile.currency
    text = _text(
        shop,
        model,
        (orders, purchases),
        since,
        interval,
        p_alive,
        to_next,
        orders_12m,
        value_12m,
        currency,
    )
    return Explanation(
        "fallback" if shop.fallback else "model",
        orders,
        since,
        interval,
        p_alive,
        to_next,
        orders_12m,
        value_12m,
        currency,
        text,
    )


def _days(n: int) -> str:
    return "today" if n <= 0 else "1 day ago" if n == 1 else f"{n} days ago"


def _percent(p: float | None) -> str:
    return f"{round((p or 0) * 100)} %"


def _text(
    shop: ShopModel,
    model: PredictionModel | None,
    counts: tuple[int, int],
    since: int,
    interval: float | None,
    p_alive: float | None,
    to_next: int | None,
    orders_12m: float | None,
    value_12m: Decimal | None,
    currency: str,
) -> str:
    orders, purchases = counts
    if orders == 1:
        history = f"Ordered once, {_days(since)}"
    elif purchases == 1:  # every order on one day: one purchase for the model
        history = f"Ordered {orders} times on one day, {_days(since)}"
    else:
        history = (
            f"Ordered {orders} times, about every {interval or 0:.0f} days, last {_days(since)}"
        )
    outlook = ""
    if orders_12m is not None and value_12m is not None:
        outlook = (
            f" Expected over the next 12 months: {orders_12m:.1f} orders, "
            f"about {value_12m:,.2f} {currency}."
        )
    when = "within a day" if to_next is not None and to_next <= 1 else f"in about {to_next} days"
    if shop.fallback:
        why = (
            model.message
            if model is not None
            else "The shop's model has not been fitted yet; predictions come from each "
            "customer's own rhythm."
        )
        if purchases == 1:
            return f"{history}; one purchase shows no rhythm yet, so no estimate. Fallback: {why}"
        return (
            f"{history}. At that rhythm the next order would come {when}; "
            f"{_percent(p_alive)} likely still active.{outlook} Rough estimate, fallback: {why}"
        )
    fitted = f" (Shop model fitted on {model.customers:,} customers.)" if model else ""
    if purchases == 1:
        return (
            f"{history}: too early to tell whether they will come back. Customers with a "
            f"single purchase that long ago order {orders_12m or 0:.1f} times in the next 12 "
            f"months on average, worth about {value_12m or 0:,.2f} {currency}.{fitted}"
        )
    return (
        f"{history}. Customers with this rhythm who are still active order again {when}: "
        f"{_percent(p_alive)} likely still active.{outlook}{fitted}"
    )
