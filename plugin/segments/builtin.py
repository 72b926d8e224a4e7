"""The segments every shop starts with. Their thresholds are ordinary rule values: a
merchant edits them like any other segment; re-installing never overwrites an edit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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
