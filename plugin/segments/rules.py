"""The segment rule language: a JSON tree, validated into typed nodes with clear errors.

A rule is one of
- `{"all": [rule, …]}`, `{"any": [rule, …]}`, `{"not": rule}`;
- a field condition `{"field": "city", "op": "in", "value": ["Paris", "Lyon"]}`
  (fields and their operators: `plugin/segments/fields.py`);
- `{"ordered": {"at_least": 2, "within_days": 30, "category": "Apparel", …}}`: how many
  orders with these properties the customer placed;
- `{"abandoned_checkout": {"quiet_minutes": 60, "within_hours": 48}}`: a cart with lines
  that has not changed for a while and did not become an order (`quiet_minutes: 0`:
  "checkout started, no order since");
- `{"in_segment": "vip"}`: a member of another segment (by its key);
- `{"top_percent": {"field": "average_order_value", "percent": 10}}`: among the top N % of
  buyers by a figure (per currency for money), e.g. "big spenders".

Dates are absolute (`"2026-01-31"`, ISO 8601) or relative to now (`{"days_ago": 30}`,
`{"days_ahead": 7}`), so "sleeping for 90 days" stays true to its words every day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from plugin.segments.fields import FIELDS, OPERATORS, Field, FieldKind

MAX_DEPTH = 12
MAX_NODES = 200
ORDER_STATUSES = ("active", "cancelled", "refunded", "any")


class RuleError(ValueError):
    """A rule that cannot be used, with the JSON path of the offending part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class RelativeDate:
    days_ago: float

    def resolve(self, now: datetime) -> datetime:
        return now - timedelta(days=self.days_ago)


DateValue = datetime | RelativeDate
Scalar = str | Decimal | DateValue | bool


@dataclass(frozen=True)
class AllOf:
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class AnyOf:
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    rule: Rule


@dataclass(frozen=True)
class Condition:
    field: Field
    op: str
    values: tuple[Scalar, ...]  # none for is_set / is_true …, two for between


@dataclass(frozen=True)
class Ordered:
    at_least: int = 1
    at_most: int | None = None
    within_days: float | None = None
    status: Literal["active", "cancelled", "refunded", "any"] = "active"
    paid_only: bool = False
    with_voucher: bool | None = None
    category: str | None = None
    product: str | None = None


@dataclass(frozen=True)
class AbandonedCheckout:
    quiet_minutes: float = 60
    within_hours: float | None = None


@dataclass(frozen=True)
class InSegment:
    key: str


TOP_PERCENT_FIELDS = ("total_spent", "average_order_value", "orders_count", "paid_orders_count")


@dataclass(frozen=True)
class TopPercent:
    """The top `percent` % of buyers by `field`. Its thresholds depend on the whole base,
    so evaluating it needs them resolved first (`plugin/segments/thresholds.py`); the
    compiled and the single-profile paths then compare with the same numbers."""

    field: Field
    percent: float
    # (currency or "" for counts, smallest value inside the top); None: not resolved yet
    thresholds: tuple[tuple[str, Decimal], ...] | None = None


Rule = AllOf | AnyOf | Not | Condition | Ordered | AbandonedCheckout | InSegment | TopPercent
NODE_KEYS = ("all", "any", "not", "ordered", "abandoned_checkout", "in_segment", "top_percent")


def parse_rule(raw: Any) -> Rule:
    """Validate a JSON rule tree; raises RuleError naming the path and the problem."""
    counter = [0]
    return _parse(raw, "$", 0, counter)


def _parse(raw: Any, path: str, depth: int, counter: list[int]) -> Rule:
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise RuleError(path, f"a rule may have at most {MAX_NODES} parts")
    if depth > MAX_DEPTH:
        raise RuleError(path, f"rules may nest at most {MAX_DEPTH} levels deep")
    if not isinstance(raw, dict):
        raise RuleError(path, 'expected an object such as {"all": [...]} or {"field": ...}')
    if "field" in raw:
        return _condition(raw, path)
    if len(raw) != 1:
        raise RuleError(
            path,
            f"expected exactly one of {', '.join(NODE_KEYS)}; got {_keys(raw)}",
        )
    ((key, value),) = raw.items()
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            raise RuleError(f"{path}.{key}", "expected a non-empty list of rules")
        children = tuple(
            _parse(child, f"{path}.{key}[{i}]", depth + 1, counter) for i, child in enumerate(value)
        )
        return AllOf(children) if key == "all" else AnyOf(children)
    if key == "not":
        return Not(_parse(value, f"{path}.not", depth + 1, counter))
    if key == "ordered":
        return _ordered(value, f"{path}.ordered")
    if key == "abandoned_checkout":
        return _abandoned(value, f"{path}.abandoned_checkout")
    if key == "in_segment":
        return InSegment(_segment_key(value, f"{path}.in_segment"))
    if key == "top_percent":
        return _top_percent(value, f"{path}.top_percent")
    raise RuleError(path, f"unknown rule {key!r}; use {', '.join(NODE_KEYS)} or field")


def _keys(raw: dict[str, Any]) -> str:
    return ", ".join(sorted(map(str, raw))) or "nothing"


def _condition(raw: dict[str, Any], path: str) -> Condition:
    unknown = set(raw) - {"field", "op", "value"}
    if unknown:
        raise RuleError(path, f"unexpected key(s) {', '.join(sorted(unknown))}")
    name = raw["field"]
    field = FIELDS.get(name) if isinstance(name, str) else None
    if field is None:
        known = ", ".join(sorted(FIELDS))
        raise RuleError(f"{path}.field", f"unknown field {name!r}; known fields: {known}")
    op = raw.get("op")
    allowed = OPERATORS[field.kind] if not field.operators else field.operators
    if op not in allowed:
        raise RuleError(
            f"{path}.op",
            f"operator {op!r} does not apply to {field.name} ({field.kind.value}); "
            f"use one of {', '.join(allowed)}",
        )
    arity = _arity(op)
    value = raw.get("value")
    vpath = f"{path}.value"
    if arity == 0:
        if "value" in raw:
            raise RuleError(vpath, f"{op} takes no value")
        return Condition(field, op, ())
    if arity == 2:
        if not isinstance(value, list) or len(value) != 2:
            raise RuleError(vpath, f"{op} takes a list of two values [low, high]")
        low, high = (_scalar(field, v, f"{vpath}[{i}]") for i, v in enumerate(value))
        return Condition(field, op, (low, high))
    if arity == -1:
        if not isinstance(value, list) or not value or len(value) > 500:
            raise RuleError(vpath, f"{op} takes a non-empty list of at most 500 values")
        return Condition(
            field, op, tuple(_scalar(field, v, f"{vpath}[{i}]") for i, v in enumerate(value))
        )
    if "value" not in raw:
        raise RuleError(vpath, f"{op} needs a value")
    return Condition(field, op, (_scalar(field, value, vpath),))


def _arity(op: str) -> int:
    if op in ("is_set", "is_not_set", "is_true", "is_false"):
        return 0
    if op == "between":
        return 2
    if op in ("in", "not_in", "has_any", "has_none"):
        return -1
    return 1


def _scalar(field: Field, value: Any, path: str) -> Scalar:
    kind = field.kind
    if kind is FieldKind.TEXT:
        if not isinstance(value, str) or not value or len(value) > 512:
            raise RuleError(path, f"{field.name} compares with text (1–512 characters)")
        return value
    if kind in (FieldKind.NUMBER, FieldKind.MONEY, FieldKind.DAYS):
        return _number(value, path, field.name)
    if kind is FieldKind.DATE:
        return _date(value, path)
    if kind is FieldKind.TAGS:
        if not isinstance(value, str) or not value.strip() or len(value) > 64:
            raise RuleError(path, "a tag is text of 1–64 characters")
        return value.strip().lower()
    raise RuleError(path, f"{field.name} takes no value")


def _number(value: Any, path: str, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RuleError(path, f"{name} compares with a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RuleError(path, f"{value!r} is not a number") from None
    if not number.is_finite() or abs(number) > Decimal("1e12"):
        raise RuleError(path, f"{value!r} is out of range")
    return number


def _date(value: Any, path: str) -> DateValue:
    if isinstance(value, dict):
        if set(value) not in ({"days_ago"}, {"days_ahead"}):
            raise RuleError(path, 'a relative date is {"days_ago": N} or {"days_ahead": N}')
        ((key, raw),) = value.items()
        days = _number(raw, f"{path}.{key}", key)
        if days < 0 or days > 36500:
            raise RuleError(f"{path}.{key}", f"{key} must be between 0 and 36500")
        return RelativeDate(float(days) if key == "days_ago" else -float(days))
    if isinstance(value, str):
        try:
            parsed = (
                datetime.fromisoformat(value.replace("Z", "+00:00"))
                if "T" in value
                else datetime.combine(date.fromisoformat(value), datetime.min.time())
            )
        except ValueError:
            raise RuleError(path, f"{value!r} is not an ISO 8601 date") from None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise RuleError(
        path, 'a date is "YYYY-MM-DD", an ISO timestamp, {"days_ago": N} or {"days_ahead": N}'
    )


def _options(raw: Any, path: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RuleError(path, "expected an object of options")
    unknown = set(raw) - allowed
    if unknown:
        raise RuleError(
            path,
            f"unknown option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(allowed))}",
        )
    return raw


def _count(raw: Any, path: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0 or raw > 1_000_000:
        raise RuleError(path, "expected a whole number ≥ 0")
    return raw


def _positive(raw: Any, path: str, upper: float) -> float:
    number = float(_number(raw, path, path.rsplit(".", 1)[-1]))
    if number <= 0 or number > upper:
        raise RuleError(path, f"expected a number above 0 and at most {upper:g}")
    return number


def _text(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > 512:
        raise RuleError(path, "expected text (1–512 characters)")
    return raw


def _flag(raw: Any, path: str) -> bool:
    if not isinstance(raw, bool):
        raise RuleError(path, "expected true or false")
    return raw


def _ordered(raw: Any, path: str) -> Ordered:
    options = _options(
        raw,
        path,
        {
            "at_least",
            "at_most",
            "within_days",
            "status",
            "paid_only",
            "with_voucher",
            "category",
            "product",
        },
    )
    at_least = _count(options.get("at_least", 1), f"{path}.at_least")
    at_most = options.get("at_most")
    if at_most is not None:
        at_most = _count(at_most, f"{path}.at_most")
        if at_most < at_least:
            raise RuleError(f"{path}.at_most", "at_most is below at_least")
    status = options.get("status", "active")
    if status not in ORDER_STATUSES:
        raise RuleError(f"{path}.status", f"status is one of {', '.join(ORDER_STATUSES)}")
    within = options.get("within_days")
    return Ordered(
        at_least=at_least,
        at_most=at_most,
        within_days=_positive(within, f"{path}.within_days", 36500) if within is not None else None,
        status=status,
        paid_only=_flag(options.get("paid_only", False), f"{path}.paid_only"),
        with_voucher=_flag(options["with_voucher"], f"{path}.with_voucher")
        if "with_voucher" in options
        else None,
        category=_text(options["category"], f"{path}.category") if "category" in options else None,
        product=_text(options["product"], f"{path}.product") if "product" in options else None,
    )


def _abandoned(raw: Any, path: str) -> AbandonedCheckout:
    options = _options(raw, path, {"quiet_minutes", "within_hours"})
    quiet = options.get("quiet_minutes", 60)
    within = options.get("within_hours")
    if quiet != 0 or isinstance(quiet, bool):
        quiet = _positive(quiet, f"{path}.quiet_minutes", 525600)
    return AbandonedCheckout(
        quiet_minutes=float(quiet),
        within_hours=_positive(within, f"{path}.within_hours", 87600)
        if within is not None
        else None,
    )


def _segment_key(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > 64:
        raise RuleError(path, "expected the key of a segment (1–64 characters)")
    return raw


def _top_percent(raw: Any, path: str) -> TopPercent:
    options = _options(raw, path, {"field", "percent"})
    name = options.get("field")
    if name not in TOP_PERCENT_FIELDS:
        raise RuleError(f"{path}.field", f"field is one of {', '.join(TOP_PERCENT_FIELDS)}")
    if "percent" not in options:
        raise RuleError(f"{path}.percent", "percent is required (above 0, at most 100)")
    return TopPercent(FIELDS[name], _positive(options["percent"], f"{path}.percent", 100))


def segment_references(rule: Rule) -> set[str]:
    """The keys of the segments a rule depends on (`in_segment`)."""
    if isinstance(rule, AllOf | AnyOf):
        return set().union(*(segment_references(r) for r in rule.rules))
    if isinstance(rule, Not):
        return segment_references(rule.rule)
    if isinstance(rule, InSegment):
        return {rule.key}
    return set()


# Figures the scheduled jobs rewrite for everyone (RFM against moving boundaries, scores,
# predictions): a rule reading them can change without any event about the customer.
RECOMPUTED_FIELDS = frozenset(
    {
        "rfm_recency",
        "rfm_frequency",
        "rfm_monetary",
        "rfm_cell",
        "score",
        "p_alive",
        "predicted_orders_12m",
        "predicted_value_12m",
        "predicted_next_order_at",
    }
)


def changes_with_time(rule: Rule) -> bool:
    """Whether the rule can flip for a customer nothing happened to: it reads the clock
    ("days since", relative dates, order windows, quiet carts), the whole base (top N %),
    another segment, or figures the scheduled jobs recompute. Other rules change only
    when the customer's own data does, and every fold re-evaluates those."""
    if isinstance(rule, AllOf | AnyOf):
        return any(changes_with_time(r) for r in rule.rules)
    if isinstance(rule, Not):
        return changes_with_time(rule.rule)
    if isinstance(rule, Condition):
        return (
            rule.field.kind is FieldKind.DAYS
            or rule.field.name in RECOMPUTED_FIELDS
            or any(isinstance(v, RelativeDate) for v in rule.values)
        )
    if isinstance(rule, Ordered):
        return rule.within_days is not None
    return isinstance(rule, AbandonedCheckout | TopPercent | InSegment)
