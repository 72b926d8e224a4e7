"""`shipments`, `shipment`, `carrierAccounts`, `deliveryAnalytics` (MANAGE_ORDERS)."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from plugin.api import permissions
from plugin.api.context import Info
from plugin.api.errors import InvalidInput, NotFound
from plugin.api.fields import field as api_field
from plugin.api.ids import from_global_id
from plugin.api.queries.analytics import period_of
from plugin.api.types.analytics import AnalyticsPeriod
from plugin.api.types.tracking import (
    Carrier,
    CarrierAccount,
    DeliveryAnalytics,
    Shipment,
    ShipmentStatus,
)
from plugin.tracking import analytics
from plugin.tracking import models as tracking_models

MAX_SHIPMENTS = 200
# Carrier accounts hold API secrets: staff who manage orders and apps.
CARRIER_CONFIGURATION = (permissions.Permission.MANAGE_ORDERS, permissions.Permission.MANAGE_APPS)


@strawberry.type
class TrackingQueries:
    @api_field(
        "Parcels, newest first: a customer's (the customer card), an order's (Saleor order "
        "id), or the shop's, optionally in one status."
    )
    async def shipments(
        self,
        info: Info,
        customer_id: strawberry.ID | None = None,
        order_id: str | None = None,
        status: ShipmentStatus | None = None,
        carrier: Carrier | None = None,
        first: int = 50,
    ) -> list[Shipment]:
        viewer = info.context.require(*permissions.ORDERS)
        if not 1 <= first <= MAX_SHIPMENTS:
            raise InvalidInput(f"`first` is between 1 and {MAX_SHIPMENTS}.", field="first")
        model = tracking_models.Shipment
        statement = select(model).where(model.installation_id == viewer.installation_id)
        if customer_id is not None:
            profile_id = from_global_id("Customer", customer_id, field="customerId")
            statement = statement.where(model.profile_id == profile_id)
        if order_id is not None:
            statement = statement.where(model.order_saleor_id == order_id)
        if status is not None:
            statement = statement.where(model.status == status.domain)
        if carrier is not None:
            statement = statement.where(model.carrier == carrier.value)
        rows = await info.context.scalars(
            statement.order_by(model.shipped_at.desc(), model.id.desc()).limit(first)
        )
        return [Shipment.of(row) for row in rows]

    @api_field("One parcel by its id.")
    async def shipment(self, info: Info, id: strawberry.ID) -> Shipment:
        viewer = info.context.require(*permissions.ORDERS)
        model = tracking_models.Shipment
        row = await info.context.scalar(
            select(model).where(
                model.id == from_global_id("Shipment", id),
                model.installation_id == viewer.installation_id,
            )
        )
        if row is None:
            raise NotFound("No such shipment.", field="id")
        return Shipment.of(row)

    @api_field("The shop's carrier API accounts (MANAGE_ORDERS and MANAGE_APPS).")
    async def carrier_accounts(self, info: Info) -> list[CarrierAccount]:
        viewer = info.context.require(*CARRIER_CONFIGURATION)
        model = tracking_models.CarrierAccount
        rows = await info.context.scalars(
            select(model)
            .where(model.installation_id == viewer.installation_id)
            .order_by(model.carrier)
        )
        return [CarrierAccount.of(row) for row in rows]

    @api_field(
        "Days to deliver by carrier, destination city and month shipped, and the share of "
        "parcels with an exception, for parcels shipped in the period."
    )
    async def delivery_analytics(self, info: Info, period: AnalyticsPeriod) -> DeliveryAnalytics:
        viewer = info.context.require(*permissions.ANALYTICS)
        window = period_of(period)
        found = await info.context.run(
            lambda session: analytics.delivery_report(
                session, viewer.installation_id, window.start, window.end
            )
        )
        return DeliveryAnalytics.of(found)
