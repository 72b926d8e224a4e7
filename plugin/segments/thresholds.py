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
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.models import Profile
from plugin.segments.fields import FieldKind
from plugin.segments.rules import AllOf, AnyOf, Not, Rule, TopPercent

THRESHOLD_TTL_SECONDS = 120.0
# Below this many buyers the look-up is cheap, and a small shop's threshold moves with
# every order (its first buyer is its top 10 %): always computed afresh.
CACHE_FROM_BUYERS = 1000
_Key = tuple[int, str, float]
_cache: dict[_Key, tuple[float, tuple[tuple[str, Decimal], ...]]] = {}


async def resolve(
    session: AsyncSession, installation_id: int, rule: Rule, *, fresh: bool = False
) -> Rule:
    """The rule with every `top_percent` carrying its current thresholds."""
    if isinstance(rule, AllOf | AnyOf):
        parts = tuple([await resolve(session, installation_id, r, fresh=fresh) for r in rule.rules])
        return AllOf(parts) if isinstance(rule, AllOf) else AnyOf(parts)
    if isinstance(rule, Not):
        return Not(await resolve(session, installation_id, rule.rule, fresh=fresh))
    if isinstance(rule, TopPercent):
        found = await thresholds(session, installation_id, rule, fresh=fresh)
        return replace(rule, thresholds=found)
    return rule


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
        inside = max(1, math.ceil(count * rule.percent / 100))
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
