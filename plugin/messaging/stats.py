"""Measuring flows: sent, delivered, opened, clicked, converted and revenue per step and
variant; A/B significance; the holdout's true uplift.

A conversion is an order placed within the shop's attribution window after a message
was sent (the last message before the order gets it); holdout runs convert by the same
window after their trigger, so both groups are measured alike. Which orders convert and
for how much is `conversion_value`'s rule (a cancelled order for the money kept of it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Order
from plugin.messaging.config import shop_settings
from plugin.messaging.conversions import conversion_value
from plugin.messaging.models import FlowRun, Message, MessageStatus, RunStatus


@dataclass
class VariantStats:
    step_index: int
    variant: str | None
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)
    p_value: float | None = None  # against the step's first variant


@dataclass
class Uplift:
    treated: int
    treated_converted: int
    holdout: int
    holdout_converted: int
    p_value: float | None

    @property
    def uplift(self) -> float | None:
        if not self.treated or not self.holdout:
            return None
        return self.treated_converted / self.treated - self.holdout_converted / self.holdout


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value that two conversion rates differ (pooled z-test)."""
    if n1 == 0 or n2 == 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / se
    return math.erfc(abs(z) / math.sqrt(2))


async def _orders(
    session: AsyncSession, profile_ids: set[int], since: datetime
) -> dict[int, list[tuple[datetime, Decimal, str]]]:
    by_profile: dict[int, list[tuple[datetime, Decimal, str]]] = defaultdict(list)
    if not profile_ids:
        return by_profile
    rows = await session.execute(
        select(
            Order.profile_id,
            Order.placed_at,
            Order.currency,
            Order.status,
            Order.total_gross,
            Order.total_charged,
            Order.total_refunded,
        )
        .where(Order.profile_id.in_(profile_ids), Order.placed_at > since)
        .order_by(Order.placed_at)
    )
    for row in rows:
        value = conversion_value(row)
        if row.profile_id is None or value is None:
            continue
        by_profile[row.profile_id].append((row.placed_at, value, row.currency))
    return by_profile


async def flow_stats(
    session: AsyncSession, installation_id: int, flow_id: int
) -> tuple[list[VariantStats], Uplift]:
    window = timedelta(days=(await shop_settings(session, installation_id)).attribution_days)
    messages = list(
        await session.scalars(
            select(Message).where(
                Message.installation_id == installation_id,
                Message.flow_id == flow_id,
                Message.status.in_([MessageStatus.SENT, MessageStatus.SENDING]),
            )
        )
    )
    runs = list(
        await session.scalars(
            select(FlowRun).where(
                FlowRun.installation_id == installation_id, FlowRun.flow_id == flow_id
            )
        )
    )
    starts = [m.sent_at for m in messages if m.sent_at] + [r.started_at for r in runs]
    orders = (
        await _orders(
            session, {m.profile_id for m in messages} | {r.profile_id for r in runs}, min(starts)
        )
        if starts
        else {}
    )
    rows: dict[tuple[int, str | None], VariantStats] = {}
    # last touch: each order goes to the latest message sent before it, within the window
    latest: dict[tuple[int, datetime], Message] = {}
    for message in sorted(messages, key=lambda m: (m.sent_at is not None, m.sent_at, m.id)):
        key = (message.step_index or 0, message.variant)
        row = rows.setdefault(key, VariantStats(step_index=key[0], variant=key[1]))
        row.sent += 1
        row.delivered += message.status is MessageStatus.SENT
        row.opened += message.opened_at is not None
        row.clicked += message.clicked_at is not None
        for placed_at, _total, _currency in orders.get(message.profile_id, []):
            if message.sent_at and message.sent_at < placed_at <= message.sent_at + window:
                latest[(message.profile_id, placed_at)] = message
    converted: set[int] = set()
    for (_, _placed), message in latest.items():
        if message.id in converted:
            continue
        converted.add(message.id)
        row = rows[(message.step_index or 0, message.variant)]
        row.converted += 1
        for placed_at, total, currency in orders[message.profile_id]:
            if latest.get((message.profile_id, placed_at)) is message:
                row.revenue[currency] = row.revenue.get(currency, Decimal(0)) + total
    _significance(rows)
    return sorted(rows.values(), key=lambda r: (r.step_index, r.variant or "")), _uplift(
        runs, orders, window
    )


def _significance(rows: dict[tuple[int, str | None], VariantStats]) -> None:
    by_step: dict[int, list[VariantStats]] = defaultdict(list)
    for row in rows.values():
        if row.variant is not None:
            by_step[row.step_index].append(row)
    for variants in by_step.values():
        variants.sort(key=lambda r: r.variant or "")
        base = variants[0]
        for row in variants[1:]:
            row.p_value = two_proportion_p(row.converted, row.sent, base.converted, base.sent)


def _uplift(
    runs: list[FlowRun],
    orders: dict[int, list[tuple[datetime, Decimal, str]]],
    window: timedelta,
) -> Uplift:
    def converts(run: FlowRun) -> bool:
        return any(
            run.started_at < placed <= run.started_at + window
            for placed, _, _ in orders.get(run.profile_id, [])
        )

    treated = [r for r in runs if r.status is not RunStatus.HOLDOUT]
    held = [r for r in runs if r.status is RunStatus.HOLDOUT]
    t_conv = sum(converts(r) for r in treated)
    h_conv = sum(converts(r) for r in held)
    return Uplift(
        treated=len(treated),
        treated_converted=t_conv,
        holdout=len(held),
        holdout_converted=h_conv,
        p_value=two_proportion_p(t_conv, len(treated), h_conv, len(held)),
    )
