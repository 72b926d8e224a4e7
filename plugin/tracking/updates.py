"""Applying what a carrier (or staff) says to a shipment: checkpoints kept once, the
status moved only forward in time, one timeline entry per status per shipment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.upsert import insert_ignore
from plugin.timeline.service import record
from plugin.tracking import schedule
from plugin.tracking.carriers.base import TrackingUpdate
from plugin.tracking.models import Checkpoint, Shipment
from plugin.tracking.statuses import Status

TITLES = {
    Status.PENDING: "Parcel registered",
    Status.INFO_RECEIVED: "Parcel handed to the courier",
    Status.IN_TRANSIT: "Parcel in transit",
    Status.OUT_FOR_DELIVERY: "Parcel out for delivery",
    Status.ATTEMPT_FAIL: "Delivery attempt failed",
    Status.AVAILABLE_FOR_PICKUP: "Parcel ready for pickup",
    Status.DELIVERED: "Parcel delivered",
    Status.EXCEPTION: "Parcel delivery problem",
    Status.EXPIRED: "Parcel tracking expired",
}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def entry_data(shipment: Shipment) -> dict[str, Any]:
    """What the mailings flows read from a `shipment_<status>` entry (the contract)."""
    return {
        "shipment_id": shipment.id,
        "order_id": shipment.order_saleor_id,
        "order_number": shipment.order_number,
        "fulfillment_id": shipment.fulfillment_saleor_id,
        "tracking_number": shipment.tracking_number,
        "carrier": shipment.carrier,
        # Snake case, as in the entry's kind (`in_transit`); `tag` is AfterShip's spelling.
        "status": shipment.status.snake,
        "tag": shipment.status.value,
        "sub_status": shipment.sub_status,
        "carrier_status": shipment.carrier_status,
        "carrier_text": shipment.carrier_text,
        "estimated_delivery": _iso(shipment.estimated_delivery),
        "pickup_point": shipment.pickup_point,
        "pickup_hours": shipment.pickup_hours,
        "notify": not shipment.quiet,
    }


async def record_status(session: AsyncSession, shipment: Shipment) -> None:
    """The timeline entry of the shipment's current status, once per status per number."""
    if shipment.profile_id is None:
        return
    status = shipment.status
    order = f" of order #{shipment.order_number}" if shipment.order_number else ""
    text = f": {shipment.carrier_text}" if shipment.carrier_text else ""
    await record(
        session,
        installation_id=shipment.installation_id,
        profile_id=shipment.profile_id,
        kind=f"shipment_{status.snake}",
        occurred_at=shipment.status_changed_at,
        subject_type="shipment",
        subject_id=str(shipment.id),
        summary=f"{TITLES[status]}{order} ({shipment.tracking_number}){text}",
        data=entry_data(shipment),
        dedup_key=f"shipment:{shipment.id}:{shipment.tracking_number}:{status.snake}",
    )


async def _store_checkpoints(
    session: AsyncSession, shipment: Shipment, update: TrackingUpdate
) -> None:
    for point in update.checkpoints:
        await insert_ignore(
            session,
            Checkpoint,
            {
                "installation_id": shipment.installation_id,
                "shipment_id": shipment.id,
                "occurred_at": point.occurred_at,
                "status": point.status,
                "sub_status": point.sub_status,
                "carrier_status": point.carrier_status,
                "message": point.message[:1024],
                "location": point.location[:512] if point.location else None,
                "fingerprint": point.fingerprint(),
            },
            conflict_columns=["shipment_id", "fingerprint"],
        )


async def apply_update(
    session: AsyncSession, shipment: Shipment, update: TrackingUpdate, now: datetime
) -> bool:
    """Fold the carrier's view into the shipment; True when the status changed.
    An update older than what the shipment already shows changes checkpoints only."""
    await _store_checkpoints(session, shipment, update)
    moment = update.occurred_at or now
    if shipment.last_event_at is not None and moment < shipment.last_event_at:
        return False
    first_word = shipment.last_event_at is None and shipment.carrier_status is None
    changed = update.status != shipment.status
    shipment.last_event_at = moment
    shipment.sub_status = update.sub_status
    shipment.carrier_status = update.carrier_status
    shipment.carrier_text = (update.carrier_text or "")[:1024] or None
    if update.estimated_delivery is not None:
        shipment.estimated_delivery = update.estimated_delivery
    shipment.pickup_point = (update.pickup_point or "")[:1024] or None
    shipment.pickup_hours = (update.pickup_hours or "")[:512] or None
    if update.destination_city and not shipment.destination_city:
        # The order's address (Saleor's spelling) wins: analytics group by one name.
        shipment.destination_city = update.destination_city[:256]
    if update.status == Status.EXCEPTION:
        shipment.had_exception = True
    if changed:
        if first_word and update.status == Status.DELIVERED:
            shipment.quiet = True  # delivered before we ever saw it move: no message
        shipment.status = update.status
        shipment.status_changed_at = moment
        if update.status == Status.DELIVERED:
            shipment.delivered_at = moment
        await record_status(session, shipment)
    if shipment.cancelled_at is None and shipment.carrier != "manual":
        shipment.next_poll_at = schedule.next_poll(shipment.status, now)
    return changed
