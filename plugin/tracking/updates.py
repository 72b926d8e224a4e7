"""Applying what a carrier (or staff) says to a shipment: checkpoints kept once, the
status moved only forward in time, one timeline entry per status per shipment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import utcnow
from plugin.timeline.models import TimelineEntry
from plugin.tracking import schedule
from plugin.tracking.bulk import insert_ignore_many
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


@dataclass
class Rows:
    """What folds produced for other tables, written together: one multi-row
    `INSERT … ON CONFLICT DO NOTHING` per table instead of one statement per row."""

    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)

    async def write(self, session: AsyncSession) -> None:
        await insert_ignore_many(
            session, Checkpoint, self.checkpoints, conflict_columns=["shipment_id", "fingerprint"]
        )
        await insert_ignore_many(
            session, TimelineEntry, self.entries, conflict_columns=["installation_id", "dedup_key"]
        )
        self.checkpoints, self.entries = [], []


def status_entry(shipment: Shipment) -> dict[str, Any] | None:
    """The timeline entry of the shipment's current status, once per status per number
    (its dedup key); None for a parcel of no known customer."""
    if shipment.profile_id is None:
        return None
    status = shipment.status
    order = f" of order #{shipment.order_number}" if shipment.order_number else ""
    text = f": {shipment.carrier_text}" if shipment.carrier_text else ""
    return {
        "installation_id": shipment.installation_id,
        "profile_id": shipment.profile_id,
        "kind": f"shipment_{status.snake}",
        "occurred_at": shipment.status_changed_at,
        "dedup_key": f"shipment:{shipment.id}:{shipment.tracking_number}:{status.snake}",
        "summary": f"{TITLES[status]}{order} ({shipment.tracking_number}){text}"[:1024],
        "subject_type": "shipment",
        "subject_id": str(shipment.id),
        "data": entry_data(shipment),
        "recorded_at": utcnow(),
    }


def _checkpoint_rows(shipment: Shipment, update: TrackingUpdate) -> list[dict[str, Any]]:
    return [
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
        }
        for point in update.checkpoints
    ]


def fold(shipment: Shipment, update: TrackingUpdate, now: datetime, rows: Rows) -> bool:
    """Fold the carrier's view into the shipment, adding its checkpoints and timeline
    entry to `rows`; True when the status changed. An update older than what the
    shipment already shows changes checkpoints only."""
    rows.checkpoints.extend(_checkpoint_rows(shipment, update))
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
        if (entry := status_entry(shipment)) is not None:
            rows.entries.append(entry)
    if shipment.cancelled_at is None and shipment.carrier != "manual":
        shipment.next_poll_at = schedule.next_poll(shipment.status, now)
    return changed


async def apply_update(
    session: AsyncSession, shipment: Shipment, update: TrackingUpdate, now: datetime
) -> bool:
    """`fold` one update and write its rows at once; True when the status changed."""
    rows = Rows()
    changed = fold(shipment, update, now, rows)
    await rows.write(session)
    return changed
