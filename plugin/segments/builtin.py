"""The segments every shop starts with. Their thresholds are ordinary rule values: a
merchant edits them like any other segment; re-installing never overwrites an edit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.models import Profile
from plugin.segments.models import Segment
from plugin.segments.rules import parse_rule


@dataclass(frozen=True)
class BuiltinSegment:
    key: str
    name: str
    description: str
    rule: dict[str, Any]


BUILTIN_SEGMENTS = (
    BuiltinSegment(
        "new_customers",
        "New customers",
        "First order within the last 30 days.",
        {"field": "days_since_first_order", "op": "lte", "value": 30},
    ),
    BuiltinSegment(
        "one_time_buyers",
        "One-time buyers",
        "Exactly one paid order so far: the ones to bring back for a second.",
        {"field": "paid_orders_count", "op": "eq", "value": 1},
    ),
    BuiltinSegment(
        "regulars",
        "Regulars",
        "Three or more paid orders.",
        {"field": "paid_orders_count", "op": "gte", "value": 3},
    ),
    BuiltinSegment(
        "vip",
        "VIP",
        "Three or more paid orders and at least 1,000 spent in the main currency.",
        {
            "all": [
                {"field": "paid_orders_count", "op": "gte", "value": 3},
                {"field": "total_spent", "op": "gte", "value": 1000},
            ]
        },
    ),
    BuiltinSegment(
        "sleeping",
        "Sleeping",
        "Bought before, but nothing for 90 days or more.",
        {"field": "days_since_last_order", "op": "gte", "value": 90},
    ),
    BuiltinSegment(
        "churn_risk",
        "Churn risk",
        "Repeat buyers who have been quiet for 60 to 90 days: still reachable.",
        {
            "all": [
                {"field": "paid_orders_count", "op": "gte", "value": 2},
                {"field": "days_since_last_order", "op": "between", "value": [60, 90]},
            ]
        },
    ),
    BuiltinSegment(
        "abandoned_checkout",
        "Abandoned checkout",
        "A cart with items, contact known, untouched for an hour and not ordered "
        "(carts older than a week drop out).",
        {"abandoned_checkout": {"quiet_minutes": 60, "within_hours": 168}},
    ),
    BuiltinSegment(
        "big_spenders",
        "Big spenders",
        "The top 10 % of buyers by average check, in their currency.",
        {"top_percent": {"field": "average_order_value", "percent": 10}},
    ),
    BuiltinSegment(
        "source-direct",
        "Source: direct",
        "First touch carried no UTM source: typed the address, bookmarks, word of mouth.",
        {
            "all": [
                {"field": "orders_count", "op": "gte", "value": 1},
                {"field": "utm_source", "op": "is_not_set"},
            ]
        },
    ),
    BuiltinSegment(
        "discount_lovers",
        "Discount lovers",
        "Two or more orders placed with a voucher.",
        {"ordered": {"at_least": 2, "with_voucher": True}},
    ),
)

for _builtin in BUILTIN_SEGMENTS:  # a typo here must fail at import, not in production
    parse_rule(_builtin.rule)


async def ensure_builtin_segments(session: AsyncSession, installation_id: int) -> list[str]:
    """Create the built-in segments a shop does not have yet; returns the keys created."""
    existing = set(
        await session.scalars(select(Segment.key).where(Segment.installation_id == installation_id))
    )
    created = []
    for builtin in BUILTIN_SEGMENTS:
        if builtin.key in existing:
            continue
        session.add(
            Segment(
                installation_id=installation_id,
                key=builtin.key,
                name=builtin.name,
                description=builtin.description,
                rule=builtin.rule,
                builtin=True,
            )
        )
        created.append(builtin.key)
    await session.flush()
    return created


SOURCE_SEGMENTS_MAX = 20


def _source_key(source: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")[:48] or "unnamed"
    return f"source-{slug}"


async def ensure_source_segments(session: AsyncSession, installation_id: int) -> list[str]:
    """One segment per first-touch source (the biggest `SOURCE_SEGMENTS_MAX`), created as
    sources appear; like every built-in, the merchant may edit or delete them."""
    counted = func.count(Profile.id)
    sources = list(
        await session.scalars(
            select(Profile.utm_source)
            .where(
                Profile.installation_id == installation_id,
                Profile.utm_source.is_not(None),
                Profile.utm_source != "",
            )
            .group_by(Profile.utm_source)
            .order_by(counted.desc(), Profile.utm_source)
            .limit(SOURCE_SEGMENTS_MAX)
        )
    )
    existing = set(
        await session.scalars(select(Segment.key).where(Segment.installation_id == installation_id))
    )
    created = []
    for source in sources:
        if source is None or len(source) > 512:
            continue
        key = _source_key(source)
        if key in existing:
            continue
        existing.add(key)
        session.add(
            Segment(
                installation_id=installation_id,
                key=key,
                name=f"Source: {source}",
                description=f"First order or checkout came from “{source}” (utm_source).",
                rule={
                    "all": [
                        {"field": "orders_count", "op": "gte", "value": 1},
                        {"field": "utm_source", "op": "eq", "value": source},
                    ]
                },
                builtin=True,
            )
        )
        created.append(key)
    await session.flush()
    return created
