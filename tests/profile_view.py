"""A canonical, id-free view of everything the CRM holds for one installation.

Two fold runs that must agree (in order vs shuffled and duplicated) are compared through
this view: profiles are keyed by their identities, not by database ids.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from plugin.commerce.models import Checkout, Fulfillment, Order, OrderLine
from plugin.db.engine import Database
from plugin.profiles.models import Identity, Profile, ProfileTotal
from plugin.timeline.models import TimelineEntry

PROFILE_FIELDS = (
    "saleor_user_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "language",
    "city",
    "country",
    "note",
    "is_active",
    "date_joined",
    "saleor_deleted_at",
    "customer_updated_at",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "referrer",
    "source_at",
    "orders_count",
    "paid_orders_count",
    "cancelled_orders_count",
    "refunded_orders_count",
    "currency",
    "total_spent",
    "average_order_value",
    "first_order_at",
    "last_order_at",
    "average_days_between_orders",
    "last_checkout_at",
)
ORDER_FIELDS = (
    "saleor_id",
    "number",
    "status",
    "charge_status",
    "is_paid",
    "currency",
    "total_gross",
    "total_charged",
    "total_refunded",
    "voucher_code",
    "user_email",
    "checkout_saleor_id",
    "utm_source",
    "placed_at",
    "source_updated_at",
)
CHECKOUT_FIELDS = (
    "saleor_id",
    "email",
    "state",
    "order_saleor_id",
    "total_gross",
    "lines_count",
    "quantity",
    "utm_source",
    "source_updated_at",
)
FULFILLMENT_FIELDS = ("saleor_id", "order_saleor_id", "status", "tracking_number", "warehouse")

# Bookkeeping that depends on arrival order by nature (a merge happens only if the
# duplicate profile existed first); every other timeline entry must agree.
ORDER_DEPENDENT_KINDS = {"profile_merged"}


def _pick(row: Any, fields: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple((name, getattr(row, name)) for name in fields)


async def installation_view(db: Database, installation_id: int) -> dict[Any, Any]:
    async with db.session() as session:
        profiles = list(
            await session.scalars(select(Profile).where(Profile.installation_id == installation_id))
        )
        view: dict[Any, Any] = {}
        for profile in profiles:
            identities = frozenset(
                (i.kind.value, i.value, i.marketing_consent)
                for i in await session.scalars(
                    select(Identity).where(Identity.profile_id == profile.id)
                )
            )
            orders = []
            for order in await session.scalars(
                select(Order).where(Order.profile_id == profile.id).order_by(Order.saleor_id)
            ):
                lines = sorted(
                    (line.sku, line.quantity, line.total_price_gross, line.category_name)
                    for line in await session.scalars(
                        select(OrderLine).where(OrderLine.order_id == order.id)
                    )
                )
                orders.append((_pick(order, ORDER_FIELDS), tuple(lines)))
            checkouts = [
                _pick(c, CHECKOUT_FIELDS)
                for c in await session.scalars(
                    select(Checkout)
                    .where(Checkout.profile_id == profile.id)
                    .order_by(Checkout.saleor_id)
                )
            ]
            fulfillments = [
                _pick(f, FULFILLMENT_FIELDS)
                for f in await session.scalars(
                    select(Fulfillment)
                    .where(Fulfillment.profile_id == profile.id)
                    .order_by(Fulfillment.saleor_id)
                )
            ]
            totals = sorted(
                (
                    t.currency,
                    t.orders_count,
                    t.paid_orders_count,
                    t.total_spent,
                    t.average_order_value,
                )
                for t in await session.scalars(
                    select(ProfileTotal).where(ProfileTotal.profile_id == profile.id)
                )
            )
            timeline = sorted(
                (e.occurred_at, e.kind, e.subject_id, e.summary)
                for e in await session.scalars(
                    select(TimelineEntry).where(TimelineEntry.profile_id == profile.id)
                )
                if e.kind not in ORDER_DEPENDENT_KINDS
            )
            view[identities] = {
                "profile": _pick(profile, PROFILE_FIELDS),
                "orders": orders,
                "checkouts": checkouts,
                "fulfillments": fulfillments,
                "totals": totals,
                "timeline": timeline,
            }
        anonymous_checkouts = sorted(
            _pick(c, CHECKOUT_FIELDS)
            for c in await session.scalars(
                select(Checkout).where(
                    Checkout.installation_id == installation_id, Checkout.profile_id.is_(None)
                )
            )
        )
        view["anonymous checkouts"] = anonymous_checkouts
    return view
