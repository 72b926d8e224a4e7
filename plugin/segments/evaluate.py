"""Evaluating a rule for one customer, with an explanation of every part.

This is the path taken on each fold (one profile changed) and by the customer card ("why is
she a VIP?"). `plugin/segments/sql.py` answers the same question for the whole base in one
query; a property test keeps the two in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from plugin.commerce.models import CheckoutState
from plugin.segments.describe import describe
from plugin.segments.facts import OrderFacts, ProfileFacts
from plugin.segments.fields import CONSENT_FLAGS, Field, FieldKind
from plugin.segments.rules import (
    AbandonedCheckout,
    AllOf,
    AnyOf,
    Condition,
    InSegment,
    Not,
    Ordered,
    RelativeDate,
    Rule,
    Scalar,
    TopPercent,
)


@dataclass
class Explanation:
    """Whether a part of the rule held, in words, with the customer's actual value."""

    rule: str
    holds: bool
    value: Any = None
    parts: list[Explanation] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "holds": self.holds}
        if self.value is not None:
            out["value"] = self.value
        if self.parts:
            out["parts"] = [p.as_dict() for p in self.parts]
        return out


def matches(rule: Rule, facts: ProfileFacts, now: datetime) -> bool:
    """Whether the rule holds, short-circuiting and without building any explanation
    (the hot path: every segment for every customer a fold touched)."""
    if isinstance(rule, AllOf):
        return all(matches(r, facts, now) for r in rule.rules)
    if isinstance(rule, AnyOf):
        return any(matches(r, facts, now) for r in rule.rules)
    if isinstance(rule, Not):
        return not matches(rule.rule, facts, now)
    if isinstance(rule, Condition):
        return _condition(rule, _actual(rule.field, facts), now)
    if isinstance(rule, Ordered):
        count = sum(1 for order in facts.orders if _order_counts(rule, order, now))
        return count >= rule.at_least and (rule.at_most is None or count <= rule.at_most)
    if isinstance(rule, InSegment):
        return rule.key in facts.segments
    if isinstance(rule, TopPercent):
        return _in_top(rule, facts)
    quiet_since = now - timedelta(minutes=rule.quiet_minutes)
    return any(
        _abandoned(rule, c.state, c.lines_count, c.source_updated_at, now, quiet_since)
        for c in facts.checkouts
    )


def explain(rule: Rule, facts: ProfileFacts, now: datetime) -> Explanation:
    if isinstance(rule, AllOf | AnyOf):
        parts = [explain(r, facts, now) for r in rule.rules]
        holds = (
            all(p.holds for p in parts) if isinstance(rule, AllOf) else any(p.holds for p in parts)
        )
        return Explanation("all of" if isinstance(rule, AllOf) else "any of", holds, parts=parts)
    if isinstance(rule, Not):
        inner = explain(rule.rule, facts, now)
        return Explanation("not", not inner.holds, parts=[inner])
    if isinstance(rule, Condition):
        actual = _actual(rule.field, facts)
        return Explanation(
            describe(rule), _condition(rule, actual, now), _shown(rule.field, actual, now)
        )
    if isinstance(rule, Ordered):
        count = sum(1 for order in facts.orders if _order_counts(rule, order, now))
        holds = count >= rule.at_least and (rule.at_most is None or count <= rule.at_most)
        return Explanation(describe(rule), holds, count)
    if isinstance(rule, InSegment):
        return Explanation(describe(rule), rule.key in facts.segments)
    if isinstance(rule, TopPercent):
        value = facts.attributes.get(rule.field.column)
        return Explanation(
            describe(rule), _in_top(rule, facts), _shown(rule.field, value, now) or None
        )
    quiet_since = now - timedelta(minutes=rule.quiet_minutes)
    carts = [
        c
        for c in facts.checkouts
        if _abandoned(rule, c.state, c.lines_count, c.source_updated_at, now, quiet_since)
    ]
    return Explanation(describe(rule), bool(carts), len(carts))


def _actual(field: Field, facts: ProfileFacts) -> Any:
    if field.kind is FieldKind.TAGS:
        return facts.tags
    if field.name in CONSENT_FLAGS:
        return CONSENT_FLAGS[field.name] in facts.consents
    return facts.attributes.get(field.column)


def _in_top(rule: TopPercent, facts: ProfileFacts) -> bool:
    if rule.thresholds is None:
        raise ValueError("top_percent thresholds must be resolved before evaluating")
    value = facts.attributes.get(rule.field.column)
    if not facts.attributes.get("orders_count") or value is None:
        return False
    wanted = facts.attributes.get("currency") if rule.field.kind is FieldKind.MONEY else ""
    return any(
        currency == wanted and Decimal(value) >= threshold
        for currency, threshold in rule.thresholds
    )


def _abandoned(
    rule: AbandonedCheckout,
    state: CheckoutState,
    lines_count: int,
    changed_at: datetime,
    now: datetime,
    quiet_since: datetime,
) -> bool:
    if state is not CheckoutState.OPEN or lines_count <= 0 or changed_at > quiet_since:
        return False
    return rule.within_hours is None or changed_at >= now - timedelta(hours=rule.within_hours)


def _order_counts(rule: Ordered, order: OrderFacts, now: datetime) -> bool:
    if not order.placed:
        return False
    if rule.status == "active" and order.status == "CANCELED":
        return False
    if rule.status == "cancelled" and order.status != "CANCELED":
        return False
    if rule.status == "refunded" and not order.total_refunded > 0:
        return False
    if rule.paid_only and not order.paid:
        return False
    if rule.within_days is not None and order.placed_at < now - timedelta(days=rule.within_days):
        return False
    if rule.with_voucher is not None and bool(order.voucher_code) != rule.with_voucher:
        return False
    if rule.category is not None and not any(
        rule.category in (line.category_id, line.category_name, line.category_slug)
        for line in order.lines
    ):
        return False
    return rule.product is None or any(
        rule.product in (line.product_id, line.product_name, line.sku) for line in order.lines
    )


def _date(value: Scalar, now: datetime) -> datetime:
    if isinstance(value, RelativeDate):
        return value.resolve(now)
    assert isinstance(value, datetime)
    return value


def _number(field: Field, actual: Any, value: Scalar) -> tuple[Any, Any]:
    assert isinstance(value, Decimal)
    if field.is_float:
        return float(actual), float(value)
    return Decimal(actual), value


def _condition(rule: Condition, actual: Any, now: datetime) -> bool:
    kind, op, values = rule.field.kind, rule.op, rule.values
    if kind is FieldKind.TAGS:
        if op in ("is_set", "is_not_set"):
            return bool(actual) == (op == "is_set")
        has_any = any(v in actual for v in values)
        return not has_any if op == "has_none" else has_any
    if kind is FieldKind.FLAG:
        truth = _truth(rule.field, actual)
        return truth if op == "is_true" else not truth
    if op in ("ne", "not_in"):
        positive = Condition(rule.field, "eq" if op == "ne" else "in", values)
        return not _condition(positive, actual, now)
    is_set = actual is not None and actual != ""
    if op == "is_set":
        return is_set
    if op == "is_not_set":
        return not is_set
    if actual is None:
        return False
    if kind is FieldKind.TEXT:
        text = str(actual)
        if op == "eq":
            return text == values[0]
        if op == "in":
            return text in values
        if op == "contains":
            return str(values[0]) in text
        return text.startswith(str(values[0]))  # starts_with
    if kind is FieldKind.DATE:
        if op == "before":
            return bool(actual < _date(values[0], now))
        if op == "after":
            return bool(actual > _date(values[0], now))
        return bool(_date(values[0], now) <= actual <= _date(values[1], now))
    if kind is FieldKind.DAYS:
        # days since `actual` ≥ N  ⇔  actual ≤ now − N days (compared as instants, as in SQL)
        def boundary(value: Scalar) -> datetime:
            assert isinstance(value, Decimal)
            return now - timedelta(days=float(value))

        if op == "gte":
            return bool(actual <= boundary(values[0]))
        if op == "gt":
            return bool(actual < boundary(values[0]))
        if op == "lte":
            return bool(actual >= boundary(values[0]))
        if op == "lt":
            return bool(actual > boundary(values[0]))
        return bool(boundary(values[1]) <= actual <= boundary(values[0]))  # between
    # numbers and money
    if op == "between":
        low_actual, low = _number(rule.field, actual, values[0])
        _, high = _number(rule.field, actual, values[1])
        return bool(low <= low_actual <= high)
    number, value = _number(rule.field, actual, values[0])
    return bool(
        {
            "eq": number == value,
            "gt": number > value,
            "gte": number >= value,
            "lt": number < value,
            "lte": number <= value,
        }[op]
    )


def _truth(field: Field, actual: Any) -> bool:
    if field.name == "is_active" or field.name in CONSENT_FLAGS:
        return actual is True
    return actual is not None


def _shown(field: Field, actual: Any, now: datetime) -> Any:
    """The customer's value as the card shows it next to the condition."""
    if actual is None:
        return None
    if field.kind is FieldKind.TAGS:
        return sorted(actual)
    if field.kind is FieldKind.DAYS:
        return round((now - actual).total_seconds() / 86400, 1)
    if field.kind is FieldKind.FLAG:
        return _truth(field, actual)
    if isinstance(actual, datetime):
        return actual.isoformat()
    if isinstance(actual, Decimal):
        return str(actual)
    return actual
