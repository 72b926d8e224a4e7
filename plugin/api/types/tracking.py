"""Shipments with their checkpoints, carrier accounts and delivery analytics."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from plugin.api.context import Info
from plugin.api.fields import field as api_field
from plugin.api.ids import to_global_id
from plugin.tracking import analytics
from plugin.tracking import models as tracking_models
from plugin.tracking.statuses import Status


@strawberry.enum(description="Normalised parcel status, modelled on AfterShip's tags.")
class ShipmentStatus(enum.Enum):
    PENDING = "Pending"
    INFO_RECEIVED = "InfoReceived"
    IN_TRANSIT = "InTransit"
    OUT_FOR_DELIVERY = "OutForDelivery"
    ATTEMPT_FAIL = "AttemptFail"
    AVAILABLE_FOR_PICKUP = "AvailableForPickup"
    DELIVERED = "Delivered"
    EXCEPTION = "Exception"
    EXPIRED = "Expired"

    @property
    def domain(self) -> Status:
        return Status(self.value)


@strawberry.enum(description="Carriers the app can track with.")
class Carrier(enum.Enum):
    AFTERSHIP = "aftership"
    CDEK = "cdek"
    RUSSIAN_POST = "russian_post"
    MANUAL = "manual"


@strawberry.type(description="One event in the parcel's history, as the carrier told it.")
class ShipmentCheckpoint:
    occurred_at: datetime
    status: ShipmentStatus
    sub_status: str | None
    carrier_status: str | None
    message: str
    location: str | None


@strawberry.type(description="A parcel: one Saleor fulfillment with a tracking number.")
class Shipment:
    pk: strawberry.Private[int]
    tracking_number: str
    carrier: Carrier
    carrier_source: str = strawberry.field(
        description="How the carrier was chosen: staff, metadata, shipping_method, pattern, "
        "or unknown — nothing pointed at a carrier (the parcel is tracked through the "
        "aggregator meanwhile): unknown carrier, pick one with shipmentCarrierSet."
    )
    status: ShipmentStatus
    sub_status: str | None
    carrier_status: str | None
    carrier_text: str | None = strawberry.field(description="The carrier's own words.")
    estimated_delivery: datetime | None
    pickup_point: str | None
    pickup_hours: str | None
    destination_city: str | None
    order_id: str = strawberry.field(description="Saleor's order id.")
    order_number: str | None
    fulfillment_id: str = strawberry.field(description="Saleor's fulfillment id.")
    shipped_at: datetime
    status_changed_at: datetime
    delivered_at: datetime | None
    cancelled_at: datetime | None
    next_poll_at: datetime | None
    last_error: str | None
    customer_pk: strawberry.Private[int | None]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(to_global_id("Shipment", self.pk))

    @api_field("The customer's id (null for a guest never identified).")
    def customer_id(self) -> strawberry.ID | None:
        if self.customer_pk is None:
            return None
        return strawberry.ID(to_global_id("Customer", self.customer_pk))

    @api_field("Oldest first.")
    async def checkpoints(self, info: Info) -> list[ShipmentCheckpoint]:
        rows = await info.context.loaders.checkpoints.load(self.pk)
        return [
            ShipmentCheckpoint(
                occurred_at=row.occurred_at,
                status=ShipmentStatus(row.status.value),
                sub_status=row.sub_status,
                carrier_status=row.carrier_status,
                message=row.message,
                location=row.location,
            )
            for row in rows
        ]

    @classmethod
    def of(cls, row: tracking_models.Shipment) -> Shipment:
        return cls(
            pk=row.id,
            tracking_number=row.tracking_number,
            carrier=Carrier(row.carrier),
            carrier_source=row.carrier_source,
            status=ShipmentStatus(row.status.value),
            sub_status=row.sub_status,
            carrier_status=row.carrier_status,
            carrier_text=row.carrier_text,
            estimated_delivery=row.estimated_delivery,
            pickup_point=row.pickup_point,
            pickup_hours=row.pickup_hours,
            destination_city=row.destination_city,
            order_id=row.order_saleor_id,
            order_number=row.order_number,
            fulfillment_id=row.fulfillment_saleor_id,
            shipped_at=row.shipped_at,
            status_changed_at=row.status_changed_at,
            delivered_at=row.delivered_at,
            cancelled_at=row.cancelled_at,
            next_poll_at=row.next_poll_at,
            last_error=row.last_error,
            customer_pk=row.profile_id,
        )


@strawberry.type(description="A shop's account with a carrier API (secrets never shown).")
class CarrierAccount:
    carrier: Carrier
    base_url: str
    webhook_path: str = strawberry.field(
        description="Where the carrier posts its webhooks, relative to the app's URL."
    )
    max_concurrency: int
    requests_per_second: float
    blocked_until: datetime | None

    @classmethod
    def of(cls, row: tracking_models.CarrierAccount) -> CarrierAccount:
        return cls(
            carrier=Carrier(row.carrier),
            base_url=row.base_url,
            webhook_path=f"/api/tracking/webhooks/{row.webhook_key}",
            max_concurrency=row.max_concurrency,
            requests_per_second=row.requests_per_second,
            blocked_until=row.blocked_until,
        )


@strawberry.type(description="Delivery times and exceptions of one group of shipments.")
class DeliveryGroup:
    key: str
    shipments: int
    delivered: int
    exceptions: int
    exception_share: float
    average_days: float | None
    median_days: float | None
    p90_days: float | None

    @classmethod
    def of(cls, found: analytics.DeliveryGroup) -> DeliveryGroup:
        return cls(
            key=found.key,
            shipments=found.shipments,
            delivered=found.delivered,
            exceptions=found.exceptions,
            exception_share=round(found.exception_share, 4),
            average_days=found.average_days,
            median_days=found.median_days,
            p90_days=found.p90_days,
        )


@strawberry.type(description="Shipments shipped in the period (cancelled ones left out).")
class DeliveryAnalytics:
    total: DeliveryGroup
    by_carrier: list[DeliveryGroup]
    by_city: list[DeliveryGroup]
    by_month: list[DeliveryGroup] = strawberry.field(description="By month shipped (UTC).")

    @classmethod
    def of(cls, found: analytics.DeliveryReport) -> DeliveryAnalytics:
        return cls(
            total=DeliveryGroup.of(found.total),
            by_carrier=[DeliveryGroup.of(g) for g in found.by_carrier],
            by_city=[DeliveryGroup.of(g) for g in found.by_city],
            by_month=[DeliveryGroup.of(g) for g in found.by_month],
        )
