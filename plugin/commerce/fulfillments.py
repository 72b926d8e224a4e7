"""Folding FULFILLMENT_* events: what was shipped, with which tracking number."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.commerce.erased import skip_erased
from plugin.commerce.models import Fulfillment
from plugin.profiles.contacts import claims_for
from plugin.profiles.identity import resolve
from plugin.profiles.models import Profile
from plugin.profiles.suppression import person_contacts
from plugin.saleor.payloads import (
    JSON,
    metadata_dict,
    parse_datetime,
    require,
    require_datetime,
)
from plugin.timeline.service import record
from plugin.tracking.shipments import follow_fulfillment

EVENT_TITLES = {
    "fulfillment_created": "Shipped",
    "fulfillment_approved": "Shipment approved",
    "fulfillment_canceled": "Shipment cancelled",
    "fulfillment_tracking_number_updated": "Tracking number updated",
    "fulfillment_metadata_updated": "Shipment metadata updated",
}


def _lines(data: JSON) -> list[JSON]:
    result = []
    for line in data.get("lines") or []:
        order_line = line.get("orderLine") or {}
        result.append(
            {
                "quantity": line.get("quantity"),
                "sku": order_line.get("productSku"),
                "product": order_line.get("productName"),
                "variant": order_line.get("variantName"),
            }
        )
    return result


async def fold_fulfillment_event(
    session: AsyncSession, installation_id: int, event_type: str, event: JSON
) -> list[Profile]:
    data = require(event, "fulfillment")
    order = event.get("order") or {}
    saleor_id = str(require(data, "id"))
    order_saleor_id = str(require(order, "id"))
    # Fulfillments carry no updatedAt: the event's own time orders the snapshots.
    issued_at = require_datetime(event.get("issuedAt"), "issuedAt")
    contacts = person_contacts(order.get("user"), order.get("userEmail"))
    if await skip_erased(session, installation_id, contacts, issued_at):
        return []

    claims = claims_for(order.get("user"), order.get("userEmail"), order.get("shippingAddress"))
    profile = await resolve(session, installation_id, claims, issued_at)

    fulfillment = await session.scalar(
        select(Fulfillment).where(
            Fulfillment.installation_id == installation_id, Fulfillment.saleor_id == saleor_id
        )
    )
    if fulfillment is None:
        fulfillment = Fulfillment(
            installation_id=installation_id,
            saleor_id=saleor_id,
            order_saleor_id=order_saleor_id,
            source_updated_at=issued_at,
            fulfilled_at=parse_datetime(data.get("created")) or issued_at,
        )
        session.add(fulfillment)
    if issued_at >= fulfillment.source_updated_at:
        fulfillment.status = str(data.get("status") or "FULFILLED")
        fulfillment.tracking_number = str(data.get("trackingNumber") or "")
        fulfillment.fulfillment_order = data.get("fulfillmentOrder")
        fulfillment.warehouse = (data.get("warehouse") or {}).get("name")
        fulfillment.lines = _lines(data)
        fulfillment.saleor_metadata = metadata_dict(data.get("metadata"))
        fulfillment.source_updated_at = issued_at
    if profile is not None:
        fulfillment.profile_id = profile.id
    await session.flush()
    await follow_fulfillment(
        session,
        installation_id,
        event,
        profile_id=profile.id if profile is not None else None,
        issued_at=issued_at,
    )

    if profile is None:
        return []
    # The entry describes this event's own snapshot, not the newest stored state.
    event_tracking = str(data.get("trackingNumber") or "")
    tracking = f", tracking {event_tracking}" if event_tracking else ""
    await record(
        session,
        installation_id=installation_id,
        profile_id=profile.id,
        kind=event_type,
        occurred_at=issued_at,
        subject_type="fulfillment",
        subject_id=saleor_id,
        summary=f"{EVENT_TITLES.get(event_type, 'Shipment')}: order #{order.get('number')}"
        f"{tracking}",
        data={
            "order_id": order_saleor_id,
            "order_number": order.get("number"),
            "status": data.get("status"),
            "tracking_number": data.get("trackingNumber"),
        },
        dedup_key=f"{event_type}:{saleor_id}:{issued_at.isoformat()}",
    )
    return [profile]
