"""Thresholds that depend on the whole base ("top 10 % by average check").

A `top_percent` rule is resolved into plain numbers before it is compiled or evaluated, so
the whole-base query and the one-customer evaluator compare with the same values. The
scheduled refresh recomputes them; a fold reuses the last ones for up to
`THRESHOLD_TTL_SECONDS` when the base is large (computing a percentile of a large base on
every webhook would cost more than the whole fold).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import func, select, type_coerce
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.models import Profile
from plugin.segments.fields import FieldKind
from plugin.segments.rules import AllOf, AnyOf, Not, Rule, TopPercent

THRESHOLD_TTL_SECONDS = 120.0
# Below this many buyers the look-up is cheap, and a small shop's threshold moves with
# every order (its first buyer is its top 10 %): always computed afresh.
CACHE_FROM_BUYERS = 1000
_Key = tuple[int, str, float]
# (field name, percent) → thresholds, as `thresholds` returns them
Book = dict[tuple[str, float], tuple[tuple[str, Decimal], ...]]
_cache: dict[_Key, tuple[float, tuple[tuple[str, Decimal], ...]]] = {}


async def resolve(
    session: AsyncSession,
    installation_id: int,
    rule: Rule,
    *,
    fresh: bool = False,
    known: Book | None = None,
) -> Rule:
    """The rule with every `top_percent` carrying its current thresholds (taken from
    `known` when it has them: a whole-shop refresh computes them all at once)."""

    async def again(inner: Rule) -> Rule:
        return await resolve(session, installation_id, inner, fresh=fresh, known=known)

    if isinstance(rule, AllOf | AnyOf):
        parts = tuple([await again(r) for r in rule.rules])
        return AllOf(parts) if isinstance(rule, AllOf) else AnyOf(parts)
    if isinstance(rule, Not):
        return Not(await again(rule.rule))
    if isinstance(rule, TopPercent):
        if known is not None and book_key(rule) in known:
            return replace(rule, thresholds=known[book_key(rule)])
        found = await thresholds(session, installation_id, rule, fresh=fresh)
        return replace(rule, thresholds=found)
    return rule


def top_percents(rule: Rule) -> list[TopPercent]:
    """Every `top_percent` inside the rule."""
    if isinstance(rule, AllOf | AnyOf):
        return [found for r in rule.rules for found in top_percents(r)]
    if isinstance(rule, Not):
        return top_percents(rule.rule)
    return [rule] if isinstance(rule, TopPercent) else []


def book_key(rule: TopPercent) -> tuple[str, float]:
    return (rule.field.name, rule.percent)


def _position(buyers: int, percent: float) -> int:
    """1-based rank, from the top, of the smallest value inside the top `percent` %:
    ceil(buyers × percent / 100) in exact decimal arithmetic (as the SQL computes it)."""
    return max(1, math.ceil(Decimal(buyers) * Decimal(str(percent)) / 100))


async def compute_many(
    session: AsyncSession, installation_id: int, rules: Iterable[TopPercent]
) -> Book:
    """The thresholds of many `top_percent` rules, fresh. On PostgreSQL one sort per field
    and currency answers every percent of that field; elsewhere each rule is looked up
    on its own. Large shops' results go to the cache the folds read."""
    wanted: dict[str, list[TopPercent]] = {}
    for rule in rules:
        wanted.setdefault(rule.field.name, []).append(rule)
    book: Book = {}
    for same_field in wanted.values():
        if session.get_bind().dialect.name != "postgresql":
            for rule in same_field:
                book[book_key(rule)] = await thresholds(session, installation_id, rule, fresh=True)
            continue
        book.update(await _ranked_scan(session, installation_id, same_field))
    return book


async def _ranked_scan(
    session: AsyncSession, installation_id: int, rules: list[TopPercent]
) -> Book:
    """Buyers per currency, then per currency one sort (`percentile_disc`) for every
    percent. Each position k is asked for as the fraction (k − ½)/n, whose
    ceil(fraction × n) is k whatever the floating-point rounding."""
    field = rules[0].field
    column = getattr(Profile, field.column)
    per_currency = field.kind is FieldKind.MONEY
    conditions = [Profile.installation_id == installation_id, Profile.orders_count > 0]
    if per_currency:
        rows = await session.execute(
            select(Profile.currency, func.count())
            .where(*conditions, Profile.currency.is_not(None))
            .group_by(Profile.currency)
        )
        buyers = {str(currency): int(count) for currency, count in rows}
    else:
        buyers = {"": int(await session.scalar(select(func.count()).where(*conditions)) or 0)}
    at: dict[tuple[str, int], Decimal] = {}
    for currency, count in sorted(buyers.items()):
        if count == 0:
            continue
        ranks = sorted({_position(count, rule.percent) for rule in rules})
        fractions = [(k - 0.5) / count for k in ranks]
        where = [*conditions, Profile.currency == currency] if per_currency else conditions
        values = await session.scalar(
            select(
                type_coerce(
                    func.percentile_disc(postgresql.array(fractions)).within_group(column.desc()),
                    postgresql.ARRAY(column.type),
                )
            ).where(*where)
        )
        for k, value in zip(ranks, values or [], strict=False):
            if value is not None:
                at[(currency, k)] = Decimal(value)
    book: Book = {}
    for rule in rules:
        found = tuple(
            (currency, at[(currency, _position(count, rule.percent))])
            for currency, count in sorted(buyers.items())
            if (currency, _position(count, rule.percent)) in at
        )
        book[book_key(rule)] = found
        if sum(buyers.values()) >= CACHE_FROM_BUYERS:
            _cache[(installation_id, rule.field.name, rule.percent)] = (time.monotonic(), found)
    return book


def needs_resolving(rule: Rule) -> bool:
    if isinstance(rule, AllOf | AnyOf):
        return any(needs_resolving(r) for r in rule.rules)
    if isinstance(rule, Not):
        return needs_resolving(rule.rule)
    return isinstance(rule, TopPercent)


async def thresholds(
    session: AsyncSession, installation_id: int, rule: TopPercent, *, fresh: bool = False
) -> tuple[tuple[str, Decimal], ...]:
    """(currency, smallest value inside the top) per currency; ("", value) for counts."""
    key = (installation_id, rule.field.name, rule.percent)
    cached = _cache.get(key)
    if not fresh and cached is not None and time.monotonic() - cached[0] < THRESHOLD_TTL_SECONDS:
        return cached[1]
    column = getattr(Profile, rule.field.column)
    per_currency = rule.field.kind is FieldKind.MONEY
    buyers = select(func.count()).where(
        Profile.installation_id == installation_id, Profile.orders_count > 0
    )
    groups: list[tuple[str, int]]
    if per_currency:
        rows = await session.execute(
            buyers.add_columns(Profile.currency)
            .where(Profile.currency.is_not(None))
            .group_by(Profile.currency)
            .order_by(Profile.currency)
        )
        groups = [(str(currency), int(count)) for count, currency in rows]
    else:
        groups = [("", int(await session.scalar(buyers) or 0))]
    found: list[tuple[str, Decimal]] = []
    for currency, count in groups:
        if count == 0:
            continue
        inside = _position(count, rule.percent)
        query = (
            select(column)
            .where(Profile.installation_id == installation_id, Profile.orders_count > 0)
            .order_by(column.desc())
            .offset(inside - 1)
            .limit(1)
        )
        if per_currency:
            query = query.where(Profile.currency == currency)
        value = await session.scalar(query)
        if value is not None:
            found.append((currency, Decimal(value)))
    result = tuple(found)
    if sum(count for _, count in groups) >= CACHE_FROM_BUYERS:
        _cache[key] = (time.monotonic(), result)
    return result
