"""`orderOverview(saleorId)`: one Saleor order with its buyer's card and its shipments.

The order page's widget in the Saleor dashboard knows only Saleor's order id; this is the
one read it needs: the order as the CRM folded it, the customer it landed on, and every
fulfillment with its tracking number and the newest delivery news on the timeline.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy import select

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.fields import field as api_field
from plugin.api.types.commerce import Order
from plugin.api.types.customer import Customer
from plugin.commerce import models
from plugin.profiles.models import Profile
from plugin.timeline.models import TimelineEntry

# Delivery news are timeline entries about a fulfillment whose kind starts with this.
SHIPMENT_KIND_PREFIX = "shipment_"


@strawberry.type(
    description="A fulfillment (parcel) of an order, as Saleor and the carrier see it."
)
class OrderFulfillment:
    saleor_id: str
    status: str = strawberry.field(description="Saleor's status: FULFILLED, RETURNED, ….")
    tracking_number: str
    warehouse: str | None
    fulfilled_at: datetime
    delivery_status: str | None = strawberry.field(
        description="The newest carrier status on the timeline (`shipment_in_transit`, …)."
    )
    delivery_summary: str | None = strawberry.field(description="That status in words.")
    delivery_updated_at: datetime | None


@strawberry.type(description="One order with its buyer and parcels, for the order page.")
class OrderOverview:
    order: Order
    customer: Customer | None
    fulfillments: list[OrderFulfillment]


async def _delivery_news(
    info: Info, installation_id: int, profile_id: int | None, order_saleor_id: str
) -> dict[str, TimelineEntry]:
    """The newest `shipment_<status>` entry per fulfillment of the order. Trackers record
    them on the buyer's timeline with `data.fulfillment_id` and `data.order_id` (their
    contract with the flows), so this reads the timeline, not the trackers' tables."""
    if profile_id is None:
        return {}
    entries = await info.context.scalars(
        select(TimelineEntry)
        .where(
            TimelineEntry.installation_id == installation_id,
            TimelineEntry.profile_id == profile_id,
            TimelineEntry.kind.like(SHIPMENT_KIND_PREFIX + "%"),
        )
        .order_by(TimelineEntry.occurred_at, TimelineEntry.id)
    )
    newest: dict[str, TimelineEntry] = {}
    for entry in entries:  # oldest first: the last one kept is the newest
        data = entry.data or {}
        if data.get("order_id") == order_saleor_id and data.get("fulfillment_id"):
            newest[str(data["fulfillment_id"])] = entry
    return newest


@strawberry.type
class OrderQueries:
    @api_field(
        "One order by its Saleor id, with its buyer and shipments. Needs MANAGE_ORDERS "
        "(and MANAGE_USERS for the buyer, null without it). Null when the CRM has not "
        "received the order."
    )
    async def order_overview(self, info: Info, saleor_id: strawberry.ID) -> OrderOverview | None:
        viewer = info.context.require(*permissions.ORDERS)
        rows = await info.context.scalars(
            select(models.Order).where(
                models.Order.installation_id == viewer.installation_id,
                models.Order.saleor_id == str(saleor_id),
            )
        )
        if not rows:
            return None
        order: models.Order = rows[0]
        customer = None
        if order.profile_id is not None and viewer.has(*permissions.CUSTOMERS):
            profiles = await info.context.scalars(
                select(Profile).where(Profile.id == order.profile_id)
            )
            customer = Customer.of(profiles[0]) if profiles else None
        parcels: list[models.Fulfillment] = await info.context.scalars(
            select(models.Fulfillment)
            .where(
                models.Fulfillment.installation_id == viewer.installation_id,
                models.Fulfillment.order_saleor_id == order.saleor_id,
            )
            .order_by(models.Fulfillment.fulfilled_at, models.Fulfillment.id)
        )
        news = await _delivery_news(info, viewer.installation_id, order.profile_id, order.saleor_id)
        return OrderOverview(
            order=Order.of(order),
            customer=customer,
            fulfillments=[
                OrderFulfillment(
                    saleor_id=parcel.saleor_id,
                    status=parcel.status,
                    tracking_number=parcel.tracking_number,
                    warehouse=parcel.warehouse,
                    fulfilled_at=parcel.fulfilled_at,
                    delivery_status=news[parcel.saleor_id].kind
                    if parcel.saleor_id in news
                    else None,
                    delivery_summary=(
                        news[parcel.saleor_id].summary if parcel.saleor_id in news else None
                    ),
                    delivery_updated_at=(
                        news[parcel.saleor_id].occurred_at if parcel.saleor_id in news else None
                    ),
                )
                for parcel in parcels
            ],
        )
