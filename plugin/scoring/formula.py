"""The score as one SQL expression over `profiles`.

The same expression scores the whole base in one UPDATE and one customer on a fold, so
the two can never disagree, and its parts are the explanation shown on the card.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Float, Integer, case, cast, func, literal, null, select

from plugin.commerce.models import Fulfillment
from plugin.profiles.models import Profile
from plugin.scoring.weights import NEUTRAL_SOURCE, ScoreSettings

RETURNED_STATUSES = ("RETURNED", "REFUNDED_AND_RETURNED", "REPLACED")
SHIPPED_STATUSES = ("FULFILLED", "REFUNDED", *RETURNED_STATUSES)


def _f(value: Any) -> Any:
    return cast(value, Float)


def _smaller(a: Any, b: Any) -> Any:
    return case((a < b, a), else_=b)


def _rfm(column: Any) -> Any:
    """RFM score 1–5 as 0–1; unknown (RFM not computed yet) is neutral."""
    return func.coalesce((_f(column) - 1.0) / 4.0, 0.5)


def factor_expressions(settings: ScoreSettings, medians: dict[str, Decimal]) -> dict[str, Any]:
    """factor name → SQL expression of its 0–1 value for the row of `Profile`."""
    placed = Profile.orders_count + Profile.cancelled_orders_count
    troubles = Profile.cancelled_orders_count + Profile.refunded_orders_count
    # One look-up of the customer's fulfillments per row (a sub-query named twice in an
    # expression runs twice).
    shipped = func.count(Fulfillment.id).filter(Fulfillment.status.in_(SHIPPED_STATUSES))
    returned = func.count(Fulfillment.id).filter(Fulfillment.status.in_(RETURNED_STATUSES))
    delivery = (
        select(case((shipped > 0, 1.0 - _f(returned) / _f(shipped)), else_=1.0))
        .where(Fulfillment.profile_id == Profile.id)
        .correlate(Profile)
        .scalar_subquery()
    )
    known = [
        (Profile.currency == c, literal(float(m))) for c, m in sorted(medians.items()) if m > 0
    ]
    median = case(*known, else_=None) if known else null()
    average_check = func.coalesce(
        _smaller(_f(Profile.average_order_value) / (2.0 * median), 1.0), 0.5
    )
    source = case(
        *((Profile.utm_source == s, literal(v)) for s, v in sorted(settings.sources.items())),
        else_=literal(NEUTRAL_SOURCE),
    )
    return {
        "recency": _rfm(Profile.rfm_recency),
        "frequency": _rfm(Profile.rfm_frequency),
        "monetary": _rfm(Profile.rfm_monetary),
        "average_check": average_check,
        "reliability": case(
            (placed > 0, 1.0 - _smaller(_f(troubles) / _f(placed), 1.0)), else_=1.0
        ),
        "payment": case(
            (Profile.orders_count > 0, _f(Profile.paid_orders_count) / _f(Profile.orders_count)),
            else_=0.0,
        ),
        "delivery": delivery,
        "source": source if settings.sources else literal(NEUTRAL_SOURCE),
    }


def score_expression(settings: ScoreSettings, medians: dict[str, Decimal]) -> Any:
    """0–100 for customers with an order, NULL for the others."""
    factors = factor_expressions(settings, medians)
    total = settings.total_weight
    weighted = sum(
        (factors[name] * (weight / total) for name, weight in settings.weights.items() if weight),
        literal(0.0),
    )
    return case(
        (Profile.orders_count > 0, cast(func.round(weighted * 100.0), Integer)),
        else_=None,
    )
