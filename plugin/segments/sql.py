"""Compiling a rule into one SQL condition on `profiles`, for the whole base at once.

Every leaf is made two-valued (`coalesce(…, false)`), so `not` means what it says even when
a value is missing; all values are bound parameters. Order and cart conditions become
correlated sub-queries on the customer's own rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)

from plugin.commerce.models import Checkout, CheckoutState, Order, OrderLine
from plugin.db.base import Money
from plugin.profiles.aggregates import NOT_PLACED, PAID_CHARGE_STATUSES
from plugin.profiles.models import ConsentState, Identity, IdentityKind, Profile, ProfileTag
from plugin.segments.fields import CONSENT_FLAGS, FieldKind
from plugin.segments.models import Segment, SegmentMembership
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

# Customers by id, for a computation in chunks: id > low, and id <= high unless None.
IdRange = tuple[int, int | None]


def in_range(column: Any, profiles: IdRange) -> ColumnElement[bool]:
    """`column` (a profile id) inside the chunk `profiles`."""
    low, high = profiles
    return and_(column > low, column <= high) if high is not None else column > low


class OrderCounts:
    """Order conditions of many rules answered by one pass over the orders.

    Compiled alone, each `ordered` condition is its own sub-query over the orders; a
    refresh of thirty segments would scan them once per condition. Given this collector,
    each condition becomes a `count(*) FILTER (WHERE …)` column of one `GROUP BY
    profile_id` (`subquery()`), which the caller LEFT JOINs to the profiles as
    `order_counts`. Conditions on line items keep their own sub-query."""

    NAME = "order_counts"

    def __init__(self, installation_id: int, profiles: IdRange | None = None) -> None:
        self.installation_id = installation_id
        self.profiles = profiles  # a chunk's customers: only their orders are grouped
        self._columns: list[Any] = []  # count(*) FILTER (WHERE …) AS nK
        self._conditions: list[ColumnElement[bool]] = []

    def __bool__(self) -> bool:
        return bool(self._columns)

    def count_of(self, filters: list[ColumnElement[bool]]) -> Any:
        """How many of the customer's placed orders pass `filters` (0 if none)."""
        label = f"n{len(self._columns)}"
        condition = and_(*filters) if filters else true()
        self._columns.append(func.count().filter(condition).label(label))
        self._conditions.append(condition)
        return func.coalesce(literal_column(f"{self.NAME}.{label}", Integer), 0)

    def subquery(self) -> Any:
        """Only orders that some condition counts are grouped ("with a voucher": a few),
        so the aggregate and its join stay as small as the conditions allow."""
        chunk = [] if self.profiles is None else [in_range(Order.profile_id, self.profiles)]
        return (
            select(Order.profile_id.label("profile_id"), *self._columns)
            .where(*_placed_orders(self.installation_id), *chunk, or_(*self._conditions))
            .group_by(Order.profile_id)
            .subquery(self.NAME)
        )


def compile_rule(
    rule: Rule,
    *,
    now: datetime,
    dialect: str,
    installation_id: int,
    order_counts: OrderCounts | None = None,
) -> ColumnElement[bool]:
    """A boolean SQL expression over `Profile`; never NULL. With `order_counts`, order
    conditions read its columns (the caller joins its sub-query)."""

    def again(inner: Rule) -> ColumnElement[bool]:
        return compile_rule(
            inner,
            now=now,
            dialect=dialect,
            installation_id=installation_id,
            order_counts=order_counts,
        )

    if isinstance(rule, AllOf):
        return and_(*(again(r) for r in rule.rules))
    if isinstance(rule, AnyOf):
        return or_(*(again(r) for r in rule.rules))
    if isinstance(rule, Not):
        return not_(again(rule.rule))
    if isinstance(rule, Condition):
        if rule.field.kind is FieldKind.TAGS:
            return _tags(rule, installation_id)
        if rule.field.name in CONSENT_FLAGS:
            return _consent(rule, installation_id)
        return _two_valued(_condition(rule, now, dialect))
    if isinstance(rule, Ordered):
        return _ordered(rule, now, installation_id, order_counts)
    if isinstance(rule, InSegment):
        return _in_segment(rule, installation_id)
    if isinstance(rule, TopPercent):
        return _top_percent(rule)
    return _abandoned(rule, now)


def _tags(rule: Condition, installation_id: int) -> ColumnElement[bool]:
    tagged = select(ProfileTag.profile_id).where(ProfileTag.installation_id == installation_id)
    if rule.op in ("is_set", "is_not_set"):
        inside = Profile.id.in_(tagged)
        return inside if rule.op == "is_set" else not_(inside)
    inside = Profile.id.in_(tagged.where(ProfileTag.tag.in_([str(v) for v in rule.values])))
    return not_(inside) if rule.op == "has_none" else inside


def _consent(rule: Condition, installation_id: int) -> ColumnElement[bool]:
    granted = Profile.id.in_(
        select(Identity.profile_id).where(
            Identity.installation_id == installation_id,
            Identity.kind == IdentityKind(CONSENT_FLAGS[rule.field.name]),
            Identity.marketing_consent == ConsentState.GRANTED,
        )
    )
    return granted if rule.op == "is_true" else not_(granted)


def _in_segment(rule: InSegment, installation_id: int) -> ColumnElement[bool]:
    return Profile.id.in_(
        select(SegmentMembership.profile_id)
        .join(Segment, Segment.id == SegmentMembership.segment_id)
        .where(Segment.installation_id == installation_id, Segment.key == rule.key)
    )


def _top_percent(rule: TopPercent) -> ColumnElement[bool]:
    if rule.thresholds is None:
        raise ValueError("top_percent thresholds must be resolved before compiling")
    column: Any = getattr(Profile, rule.field.column)
    options: list[ColumnElement[bool]] = []
    for currency, threshold in rule.thresholds:
        test = and_(Profile.orders_count > 0, column >= literal(threshold, Money))
        if rule.field.kind is FieldKind.MONEY:
            test = and_(test, Profile.currency == currency)
        options.append(test)
    return _two_valued(or_(*options)) if options else false()


def _two_valued(expression: Any) -> ColumnElement[bool]:
    two_valued: ColumnElement[bool] = func.coalesce(expression, false())
    return two_valued


def _date(value: Scalar, now: datetime) -> datetime:
    if isinstance(value, RelativeDate):
        return value.resolve(now)
    assert isinstance(value, datetime)
    return value


def _bound(column: Any, value: Scalar) -> Any:
    """A parameter typed like the column (dates go through the UTC type, money as Numeric)."""
    return literal(value, column.type)


def _condition(rule: Condition, now: datetime, dialect: str) -> Any:
    """The bare comparison (may be NULL when the value is missing; callers coalesce)."""
    field, op, values = rule.field, rule.op, rule.values
    column: Any = getattr(Profile, field.column)
    if field.kind is FieldKind.FLAG:
        truth = column.is_(True) if field.name == "is_active" else column.is_not(None)
        return truth if op == "is_true" else not_(truth)
    if op in ("ne", "not_in"):
        positive = Condition(field, "eq" if op == "ne" else "in", values)
        return not_(_two_valued(_condition(positive, now, dialect)))
    if op in ("is_set", "is_not_set"):
        is_set = column.is_not(None)
        if field.kind is FieldKind.TEXT:
            is_set = and_(is_set, column != "")
        return is_set if op == "is_set" else not_(is_set)
    if field.kind is FieldKind.TEXT:
        if op == "eq":
            return column == _bound(column, values[0])
        if op == "in":
            return column.in_([str(v) for v in values])
        needle = str(values[0])
        if op == "contains":
            position = func.strpos if dialect == "postgresql" else func.instr
            return position(column, literal(needle)) > 0
        return func.substr(column, 1, len(needle)) == literal(needle)  # starts_with
    if field.kind is FieldKind.DATE:
        if op == "before":
            return column < _bound(column, _date(values[0], now))
        if op == "after":
            return column > _bound(column, _date(values[0], now))
        return column.between(
            _bound(column, _date(values[0], now)), _bound(column, _date(values[1], now))
        )
    if field.kind is FieldKind.DAYS:

        def boundary(value: Scalar) -> Any:
            assert isinstance(value, Decimal)
            return _bound(column, now - timedelta(days=float(value)))

        comparisons = {
            "gte": lambda: column <= boundary(values[0]),
            "gt": lambda: column < boundary(values[0]),
            "lte": lambda: column >= boundary(values[0]),
            "lt": lambda: column > boundary(values[0]),
            "between": lambda: column.between(boundary(values[1]), boundary(values[0])),
        }
        return comparisons[op]()

    def number(value: Scalar) -> Any:
        if field.is_float:
            return literal(float(value))  # type: ignore[arg-type]
        if isinstance(column.type, Integer):  # counts compare with 1.5 as well as with 2
            if isinstance(value, Decimal) and value == value.to_integral_value():
                # an integer parameter: no per-row conversion of the column to numeric
                return literal(int(value), Integer)
            return literal(value, Money)
        return _bound(column, value)

    if op == "between":
        return column.between(number(values[0]), number(values[1]))
    value = number(values[0])
    return {
        "eq": column == value,
        "gt": column > value,
        "gte": column >= value,
        "lt": column < value,
        "lte": column <= value,
    }[op]


def _placed_orders(installation_id: int) -> list[ColumnElement[bool]]:
    return [
        Order.installation_id == installation_id,
        Order.profile_id.is_not(None),
        Order.status.not_in(NOT_PLACED),
    ]


def _ordered(
    rule: Ordered, now: datetime, installation_id: int, order_counts: OrderCounts | None = None
) -> ColumnElement[bool]:
    filters: list[ColumnElement[bool]] = []
    if rule.status == "active":
        filters.append(Order.status != "CANCELED")
    elif rule.status == "cancelled":
        filters.append(Order.status == "CANCELED")
    elif rule.status == "refunded":
        filters.append(Order.total_refunded > 0)
    if rule.paid_only:
        filters.append(or_(Order.is_paid.is_(True), Order.charge_status.in_(PAID_CHARGE_STATUSES)))
    if rule.within_days is not None:
        filters.append(
            Order.placed_at >= literal(now - timedelta(days=rule.within_days), Order.placed_at.type)
        )
    if rule.with_voucher is not None:
        has_voucher = and_(Order.voucher_code.is_not(None), Order.voucher_code != "")
        filters.append(has_voucher if rule.with_voucher else not_(has_voucher))
    if order_counts is not None and rule.category is None and rule.product is None:
        count = order_counts.count_of(filters)
        if rule.at_least > 0:
            held: ColumnElement[bool] = count >= rule.at_least
            if rule.at_most is not None:
                held = and_(held, count <= rule.at_most)
            return held
        return true() if rule.at_most is None else count <= rule.at_most
    if rule.category is not None:
        filters.append(
            exists().where(
                OrderLine.order_id == Order.id,
                or_(
                    OrderLine.category_id == rule.category,
                    OrderLine.category_name == rule.category,
                    OrderLine.category_slug == rule.category,
                ),
            )
        )
    if rule.product is not None:
        filters.append(
            exists().where(
                OrderLine.order_id == Order.id,
                or_(
                    OrderLine.product_id == rule.product,
                    OrderLine.product_name == rule.product,
                    OrderLine.sku == rule.product,
                ),
            )
        )
    # One pass over the matching orders, grouped per customer, then a semi-join: far
    # cheaper than counting each customer's orders one by one.
    counted = (
        select(Order.profile_id)
        .where(*_placed_orders(installation_id), *filters)
        .group_by(Order.profile_id)
    )
    if rule.at_least > 0:
        having = func.count(Order.id) >= rule.at_least
        if rule.at_most is not None:
            having = and_(having, func.count(Order.id) <= rule.at_most)
        return Profile.id.in_(counted.having(having))
    if rule.at_most is None:
        return true()
    return Profile.id.not_in(counted.having(func.count(Order.id) > rule.at_most))


def _abandoned(rule: AbandonedCheckout, now: datetime) -> ColumnElement[bool]:
    changed: Any = Checkout.source_updated_at
    filters: list[ColumnElement[bool]] = [
        Checkout.profile_id == Profile.id,
        Checkout.state == CheckoutState.OPEN,
        Checkout.lines_count > 0,
        changed <= literal(now - timedelta(minutes=rule.quiet_minutes), changed.type),
    ]
    if rule.within_hours is not None:
        filters.append(changed >= literal(now - timedelta(hours=rule.within_hours), changed.type))
    return exists().where(*filters).correlate(Profile)


def members_query(
    rule: Rule,
    *,
    installation_id: int,
    now: datetime,
    dialect: str,
    profiles: IdRange | None = None,
) -> Any:
    """`SELECT profiles.id` of every customer of the installation the rule holds for
    (of the chunk `profiles` only, when given)."""
    chunk = [] if profiles is None else [in_range(Profile.id, profiles)]
    return select(Profile.id).where(
        Profile.installation_id == installation_id,
        *chunk,
        compile_rule(rule, now=now, dialect=dialect, installation_id=installation_id),
    )
