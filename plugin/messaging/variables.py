"""What a template can use: customer, checkout, order, shipment, recommendations, promo.

A message stores ids (checkout, order) and small values; they are read again when it is
rendered, so a preview and a send show the same current data.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.models import Checkout, CheckoutLine, Order, OrderLine
from plugin.profiles.models import Profile

RECOMMENDATIONS = 4


def customer_vars(profile: Profile) -> dict[str, Any]:
    return {
        "id": profile.id,
        "first_name": profile.first_name or "",
        "last_name": profile.last_name or "",
        "email": profile.email or "",
        "phone": profile.phone or "",
        "language": profile.language or "",
        "city": profile.city or "",
        "country": profile.country or "",
        "orders_count": profile.orders_count,
        "total_spent": str(profile.total_spent),
        "currency": profile.currency or "",
    }


def _checkout_dict(checkout: Checkout, lines: list[CheckoutLine]) -> dict[str, Any]:
    meta = checkout.saleor_metadata or {}
    return {
        "id": checkout.saleor_id,
        "total": str(checkout.total_gross),
        "currency": checkout.currency,
        "restore_url": meta.get("restore_url", ""),
        "lines": [
            {
                "name": line.product_name,
                "variant": line.variant_name or "",
                "sku": line.sku or "",
                "quantity": line.quantity,
                "total": str(line.total_price_gross),
                "image_url": meta.get(f"image:{line.variant_id}", ""),
            }
            for line in lines
        ],
    }


def _order_dict(order: Order, lines: list[OrderLine]) -> dict[str, Any]:
    return {
        "id": order.saleor_id,
        "number": order.number or "",
        "total": str(order.total_gross),
        "currency": order.currency,
        "status": order.status,
        "lines": [
            {
                "name": line.product_name,
                "variant": line.variant_name or "",
                "category": line.category_name or "",
                "quantity": line.quantity,
                "total": str(line.total_price_gross),
            }
            for line in lines
        ],
    }


async def checkouts_vars(
    session: AsyncSession, installation_id: int, saleor_ids: Collection[str]
) -> dict[str, dict[str, Any]]:
    """Many checkouts with their lines in two statements (a batch of messages)."""
    if not saleor_ids:
        return {}
    checkouts = list(
        await session.scalars(
            select(Checkout).where(
                Checkout.installation_id == installation_id, Checkout.saleor_id.in_(saleor_ids)
            )
        )
    )
    lines: dict[int, list[CheckoutLine]] = {c.id: [] for c in checkouts}
    if checkouts:
        for line in await session.scalars(
            select(CheckoutLine)
            .where(CheckoutLine.checkout_id.in_(list(lines)))
            .order_by(CheckoutLine.id)
        ):
            lines[line.checkout_id].append(line)
    return {c.saleor_id: _checkout_dict(c, lines[c.id]) for c in checkouts}


async def orders_vars(
    session: AsyncSession, installation_id: int, saleor_ids: Collection[str]
) -> dict[str, dict[str, Any]]:
    """Many orders with their lines in two statements (a batch of messages)."""
    if not saleor_ids:
        return {}
    orders = list(
        await session.scalars(
            select(Order).where(
                Order.installation_id == installation_id, Order.saleor_id.in_(saleor_ids)
            )
        )
    )
    lines: dict[int, list[OrderLine]] = {o.id: [] for o in orders}
    if orders:
        for line in await session.scalars(
            select(OrderLine).where(OrderLine.order_id.in_(list(lines))).order_by(OrderLine.id)
        ):
            lines[line.order_id].append(line)
    return {o.saleor_id: _order_dict(o, lines[o.id]) for o in orders}


async def checkout_vars(
    session: AsyncSession, installation_id: int, saleor_id: str
) -> dict[str, Any] | None:
    return (await checkouts_vars(session, installation_id, [saleor_id])).get(saleor_id)


async def order_vars(
    session: AsyncSession, installation_id: int, saleor_id: str
) -> dict[str, Any] | None:
    return (await orders_vars(session, installation_id, [saleor_id])).get(saleor_id)


async def recommendations(session: AsyncSession, profile: Profile) -> list[dict[str, Any]]:
    """Products most often bought together with what this customer bought, minus theirs."""
    own_orders = select(Order.id).where(Order.profile_id == profile.id)
    own_products = (
        select(OrderLine.product_id)
        .where(OrderLine.order_id.in_(own_orders), OrderLine.product_id.is_not(None))
        .distinct()
    )
    baskets = (
        select(OrderLine.order_id)
        .where(
            OrderLine.installation_id == profile.installation_id,
            OrderLine.product_id.in_(own_products),
            OrderLine.order_id.not_in(own_orders),
        )
        .distinct()
    )
    rows = await session.execute(
        select(OrderLine.product_id, func.max(OrderLine.product_name), func.count())
        .where(
            OrderLine.order_id.in_(baskets),
            OrderLine.product_id.is_not(None),
            OrderLine.product_id.not_in(own_products),
        )
        .group_by(OrderLine.product_id)
        .order_by(func.count().desc(), OrderLine.product_id)
        .limit(RECOMMENDATIONS)
    )
    return [{"product_id": pid, "name": name, "bought_with": n} for pid, name, n in rows]


@dataclass
class Loaded:
    """Checkouts and orders a batch of messages refers to, read once for the batch."""

    checkouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)


async def load(
    session: AsyncSession, installation_id: int, stored: Iterable[dict[str, Any] | None]
) -> Loaded:
    checkouts: set[str] = set()
    orders: set[str] = set()
    for values in stored:
        if values and values.get("checkout_id"):
            checkouts.add(str(values["checkout_id"]))
        if values and values.get("order_id"):
            orders.add(str(values["order_id"]))
    return Loaded(
        await checkouts_vars(session, installation_id, checkouts),
        await orders_vars(session, installation_id, orders),
    )


def assemble(
    profile: Profile,
    stored: dict[str, Any] | None,
    loaded: Loaded,
    recommended: list[dict[str, Any]],
) -> dict[str, Any]:
    """The template's variables from what the batch read."""
    stored = stored or {}
    checkout_id, order_id = stored.get("checkout_id"), stored.get("order_id")
    return {
        "customer": customer_vars(profile),
        "checkout": loaded.checkouts.get(str(checkout_id)) if checkout_id else None,
        "order": loaded.orders.get(str(order_id)) if order_id else None,
        "shipment": stored.get("shipment"),
        "promo_code": stored.get("promo_code", ""),
        "recommendations": recommended,
        "data": stored.get("data") or {},
    }


async def build(
    session: AsyncSession,
    profile: Profile,
    stored: dict[str, Any] | None,
    *,
    wants_recommendations: bool = True,
) -> dict[str, Any]:
    """The template's variables; the recommendations query runs only when asked for."""
    loaded = await load(session, profile.installation_id, [stored])
    recommended = await recommendations(session, profile) if wants_recommendations else []
    return assemble(profile, stored, loaded, recommended)
