"""Rules in words, for the customer card and the segment editor ("why is she a VIP?")."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from plugin.segments.fields import FieldKind
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

OP_WORDS = {
    "eq": "is",
    "ne": "is not",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
    "starts_with": "starts with",
    "gt": "is more than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "between": "is between",
    "before": "is before",
    "after": "is after",
    "is_set": "is known",
    "is_not_set": "is unknown",
    "is_true": "yes",
    "is_false": "no",
    "has": "include",
    "has_any": "include any of",
    "has_none": "include none of",
}


def _value(value: Scalar) -> str:
    if isinstance(value, RelativeDate):
        days = f"{abs(value.days_ago):g}"
        plural = "s" if days != "1" else ""
        if value.days_ago == 0:
            return "today"
        return f"{days} day{plural} ago" if value.days_ago > 0 else f"in {days} day{plural}"
    if isinstance(value, datetime):
        return (
            value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
        )
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)


def describe(rule: Rule) -> str:
    if isinstance(rule, AllOf):
        return "all of: " + "; ".join(describe(r) for r in rule.rules)
    if isinstance(rule, AnyOf):
        return "any of: " + "; ".join(describe(r) for r in rule.rules)
    if isinstance(rule, Not):
        return f"not ({describe(rule.rule)})"
    if isinstance(rule, Condition):
        label = rule.field.label
        if rule.field.kind is FieldKind.FLAG:
            return f"{label}: {OP_WORDS[rule.op]}"
        if rule.field.kind is FieldKind.TAGS and not rule.values:
            return "has tags" if rule.op == "is_set" else "has no tags"
        words = OP_WORDS[rule.op]
        if not rule.values:
            return f"{label} {words}"
        if rule.op == "between":
            return f"{label} {words} {_value(rule.values[0])} and {_value(rule.values[1])}"
        return f"{label} {words} " + ", ".join(_value(v) for v in rule.values)
    if isinstance(rule, Ordered):
        return _ordered(rule)
    if isinstance(rule, InSegment):
        return f"in segment {rule.key!r}"
    if isinstance(rule, TopPercent):
        scope = " in their currency" if rule.field.kind is FieldKind.MONEY else ""
        return f"among the top {rule.percent:g} % of buyers by {rule.field.label}{scope}"
    return _abandoned(rule)


def _ordered(rule: Ordered) -> str:
    kind = {"active": "", "cancelled": "cancelled ", "refunded": "refunded ", "any": ""}[
        rule.status
    ]
    paid = "paid " if rule.paid_only else ""
    if rule.at_most is None:
        amount = f"at least {rule.at_least}"
    elif rule.at_most == rule.at_least:
        amount = f"exactly {rule.at_least}"
    else:
        amount = f"{rule.at_least} to {rule.at_most}"
    text = f"{amount} {paid}{kind}order(s)"
    if rule.category:
        text += f" with {rule.category!r} items"
    if rule.product:
        text += f" containing {rule.product!r}"
    if rule.with_voucher is not None:
        text += " with a voucher" if rule.with_voucher else " without a voucher"
    if rule.within_days is not None:
        text += f" in the last {rule.within_days:g} days"
    return text


def _abandoned(rule: AbandonedCheckout) -> str:
    if rule.quiet_minutes == 0:
        text = "a cart with items that did not become an order"
    else:
        text = f"a cart with items left untouched for {rule.quiet_minutes:g} minutes"
    if rule.within_hours is not None:
        text += f", last changed within {rule.within_hours:g} hours"
    return text
