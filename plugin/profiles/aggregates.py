"""A profile's figures, recomputed from its orders and checkouts on every fold.

Recomputing (instead of adding deltas) makes a fold idempotent and order-independent:
a duplicate or late event cannot count an order twice.

Definitions (shown to staff as "where the number comes from"):
- placed order: any order except drafts and expired unpaid ones;
- active order: placed and not cancelled; `orders_count` counts these;
- paid order: active and fully charged (`chargeStatus` FULL/OVERCHARGED or `isPaid`);
- cancelled orders: `cancelled_orders_count` counts them; they are left out of every other
  count, of the average check and of the first/last order dates — but not of the money;
- refunded orders: placed orders with anything refunded, cancelled ones included;
- total spent: money the shop actually kept, Σ max(charged − refunded, 0) over every order
  whatever its status (a cancelled order whose charge was never refunded still counts);
- average check: Σ order total over paid orders ÷ paid orders;
- average days between orders: (last − first) ÷ (active orders − 1);
- channel: the sales channel of the latest order (of the latest checkout without orders).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Checkout, Order
from plugin.db.base import ZERO
from plugin.profiles.models import Profile, ProfileTotal

NOT_PLACED = ("DRAFT", "EXPIRED")
PAID_CHARGE_STATUSES = ("FULL", "OVERCHARGED")
CENT = Decimal("0.01")


@dataclass
class _CurrencyFigures:
    orders: int = 0
    paid: int = 0
    spent: Decimal = ZERO
    paid_totals: Decimal = ZERO
    dates: list[datetime] = field(default_factory=list)

    @property
    def average_check(self) -> Decimal:
        return (self.paid_totals / self.paid).quantize(CENT) if self.paid else ZERO


def is_paid(order: Any) -> bool:
    return order.is_paid or (order.charge_status or "") in PAID_CHARGE_STATUSES


async def recompute(session: AsyncSession, profile: Profile) -> None:
    # Write what is pending once, then read without autoflush: the profile's new figures
    # go out in one UPDATE at the end instead of one per query.
    await session.flush()
    with session.no_autoflush:
        await _recompute(session, profile)
    await session.flush()


async def _recompute(session: AsyncSession, profile: Profile) -> None:
    # Every order, drafts and expired ones too: they count for nothing but money kept.
    orders = list(await session.scalars(select(Order).where(Order.profile_id == profile.id)))
    values, per_currency = order_figures(orders)
    for name, value in values.items():
        setattr(profile, name, value)
    profile.last_checkout_at = await session.scalar(
        select(func.max(Checkout.source_updated_at)).where(Checkout.profile_id == profile.id)
    )
    profile.channel = latest_order_channel(orders) or await _cart_channel(session, profile)
    await _replace_totals(session, profile, per_currency)


def money_kept(order: Any) -> Decimal:
    """What the shop kept of one order, whatever its status: charged − refunded, ≥ 0."""
    return max(order.total_charged - order.total_refunded, ZERO)  # type: ignore[no-any-return]


def order_figures(orders: Iterable[Any]) -> tuple[dict[str, Any], dict[str, _CurrencyFigures]]:
    """What a profile's orders make of its figures (all but the checkouts' part): the
    profile's column values, and the figures per currency behind its totals. The orders
    are ORM rows or any objects with their attributes (the import reads rows); drafts and
    expired ones may be among them (they only count for the money kept, if any)."""
    per_currency: dict[str, _CurrencyFigures] = defaultdict(_CurrencyFigures)
    active_dates: list[datetime] = []
    cancelled = refunded = 0
    for order in orders:
        kept = money_kept(order)
        active = order.status not in NOT_PLACED and order.status != "CANCELED"
        if kept > 0 or active:  # a currency with nothing kept nor bought has no figures
            per_currency[order.currency].spent += kept
        if order.status in NOT_PLACED:
            continue
        if order.total_refunded > 0:
            refunded += 1
        if not active:
            cancelled += 1
            continue
        figures = per_currency[order.currency]
        figures.orders += 1
        active_dates.append(order.placed_at)
        if is_paid(order):
            figures.paid += 1
            figures.paid_totals += order.total_gross
    active_dates.sort()
    values: dict[str, Any] = {
        "orders_count": sum(f.orders for f in per_currency.values()),
        "paid_orders_count": sum(f.paid for f in per_currency.values()),
        "cancelled_orders_count": cancelled,
        "refunded_orders_count": refunded,
        "first_order_at": active_dates[0] if active_dates else None,
        "last_order_at": active_dates[-1] if active_dates else None,
        "average_days_between_orders": (
            round(
                (active_dates[-1] - active_dates[0]).total_seconds()
                / 86400
                / (len(active_dates) - 1),
                2,
            )
            if len(active_dates) > 1
            else None
        ),
    }
    # The main currency: most orders, then most money, then the code, for a stable choice.
    ranked = sorted(per_currency.items(), key=lambda kv: (-kv[1].orders, -kv[1].spent, kv[0]))
    if ranked:
        currency, main = ranked[0]
        values.update(
            currency=currency, total_spent=main.spent, average_order_value=main.average_check
        )
    else:
        values.update(currency=None, total_spent=ZERO, average_order_value=ZERO)
    return values, per_currency


def latest_order_channel(orders: Iterable[Any]) -> str | None:
    """The channel of the latest placed order (by placement, then id) that names one."""
    ordered = [o for o in orders if o.channel_slug and o.status not in NOT_PLACED]
    if not ordered:
        return None
    return str(max(ordered, key=lambda o: (o.placed_at, o.id)).channel_slug)


async def _cart_channel(session: AsyncSession, profile: Profile) -> str | None:
    """For one who never ordered: the channel of the latest checkout."""
    channel: str | None = await session.scalar(
        select(Checkout.channel_slug)
        .where(Checkout.profile_id == profile.id, Checkout.channel_slug.is_not(None))
        .order_by(Checkout.source_updated_at.desc(), Checkout.id.desc())
        .limit(1)
    )
    return channel


async def _replace_totals(
    session: AsyncSession, profile: Profile, per_currency: dict[str, _CurrencyFigures]
) -> None:
    """One row per currency; rows are rewritten only when a figure changed."""
    wanted = {
        currency: (f.orders, f.paid, f.spent, f.average_check)
        for currency, f in per_currency.items()
    }
    existing = {
        t.currency: t
        for t in await session.scalars(
            select(ProfileTotal).where(ProfileTotal.profile_id == profile.id)
        )
    }
    for currency, row in existing.items():
        if currency not in wanted:
            await session.delete(row)
    for currency, (orders, paid, spent, average) in wanted.items():
        row = existing.get(currency) or ProfileTotal(
            installation_id=profile.installation_id, profile_id=profile.id, currency=currency
        )
        if currency not in existing:
            session.add(row)
        if (row.orders_count, row.paid_orders_count, row.total_spent, row.average_order_value) != (
            orders,
            paid,
            spent,
            average,
        ):
            row.orders_count, row.paid_orders_count = orders, paid
            row.total_spent, row.average_order_value = spent, average
