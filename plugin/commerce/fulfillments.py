"""Folding FULFILLMENT_* events: what was shipped, with which tracking number."""

from __future__ import annotations

from datetime import datetime

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
from plugin.timeline.keys import fulfillment_key
from plugin.timeline.models import TimelineEntry
from plugin.timeline.service import record
from plugin.tracking.shipments import follow_fulfillment

# The title of a fulfillment's entry by its newest status.
STATUS_TITLES = {
    "CANCELED": "Shipment cancelled",
    "WAITING_FOR_APPROVAL": "Shipment awaiting approval",
    "RETURNED": "Shipment returned",
    "REFUNDED_AND_RETURNED": "Shipment returned",
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
    await _record_fulfillment(session, installation_id, profile.id, order, data, issued_at)
    return [profile]


def _fulfillment_entry(order: JSON, data: JSON) -> tuple[str, str, JSON]:
    """Kind, summary and data of a fulfillment's one entry, from one snapshot of it."""
    status = str(data.get("status") or "FULFILLED")
    tracking = str(data.get("trackingNumber") or "")
    kind = "fulfillment_canceled" if status == "CANCELED" else "fulfillment_created"
    title = STATUS_TITLES.get(status, "Shipped")
    summary = f"{title}: order #{order.get('number')}" + (
        f", tracking {tracking}" if tracking else ""
    )
    return (
        kind,
        summary,
        {
            "order_id": str(order.get("id")),
            "order_number": order.get("number"),
            "status": data.get("status"),
            "tracking_number": data.get("trackingNumber"),
        },
    )


async def _record_fulfillment(
    session: AsyncSession,
    installation_id: int,
    profile_id: int,
    order: JSON,
    data: JSON,
    issued_at: datetime,
) -> None:
    """One timeline entry per fulfillment (created, approved, tracking number set: one
    shipment to the customer), written by its first event and brought up to date by the
    newer ones (by `issuedAt`; fulfillments have no `updatedAt`). `data.events` lists the
    events it stands for."""
    saleor_id = str(data["id"])
    kind, summary, values = _fulfillment_entry(order, data)
    key = fulfillment_key(saleor_id)
    entry = await session.scalar(
        select(TimelineEntry).where(
            TimelineEntry.installation_id == installation_id, TimelineEntry.dedup_key == key
        )
    )
    event = {"at": issued_at.isoformat(), "status": values["status"]}
    if entry is None:
        await record(
            session,
            installation_id=installation_id,
            profile_id=profile_id,
            kind=kind,
            occurred_at=issued_at,
            subject_type="fulfillment",
            subject_id=saleor_id,
            summary=summary,
            data={**values, "as_of": event["at"], "events": [event]},
            dedup_key=key,
        )
        return
    stored = dict(entry.data or {})
    events = list(stored.get("events") or [])
    if event not in events:
        events.append(event)
    as_of = parse_datetime(stored.get("as_of"))
    if as_of is None or issued_at >= as_of:
        entry.kind, entry.summary, entry.profile_id = kind, summary[:1024], profile_id
        stored = {**values, "as_of": event["at"]}
    entry.occurred_at = min(entry.occurred_at, issued_at)  # when it first happened
    entry.data = {**stored, "events": sorted(events, key=lambda e: str(e["at"]))}
