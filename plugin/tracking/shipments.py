"""Shipments follow Saleor's fulfillments: created when one has a tracking number, reset
when the number changes, stopped when it is cancelled. Called from the fulfillment fold."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.saleor.payloads import JSON, metadata_dict
from plugin.tracking.carriers.base import CheckpointData, TrackingUpdate
from plugin.tracking.carriers.manual import STATUS_KEY, TEXT_KEY
from plugin.tracking.detection import Detected, detect
from plugin.tracking.models import Checkpoint, Shipment
from plugin.tracking.statuses import Status, parse_status
from plugin.tracking.updates import TITLES, apply_update

DEFAULT_CARRIER = "aftership"
# Fulfillment states in which no parcel is travelling (anymore).
STOPPED = {"CANCELED", "WAITING_FOR_APPROVAL"}


async def get_shipment(
    session: AsyncSession, installation_id: int, fulfillment_saleor_id: str
) -> Shipment | None:
    found: Shipment | None = await session.scalar(
        select(Shipment).where(
            Shipment.installation_id == installation_id,
            Shipment.fulfillment_saleor_id == fulfillment_saleor_id,
        )
    )
    return found


def _reset(shipment: Shipment, tracking_number: str, issued_at: datetime) -> None:
    """A new number is a new parcel as far as the carrier knows."""
    shipment.tracking_number = tracking_number
    shipment.status = Status.PENDING
    for attr in ("sub_status", "carrier_status", "carrier_text", "estimated_delivery"):
        setattr(shipment, attr, None)
    shipment.pickup_point = shipment.pickup_hours = None
    shipment.last_event_at = shipment.delivered_at = None
    shipment.status_changed_at = issued_at
    shipment.quiet = False
    shipment.alerts = None
    shipment.poll_failures = 0


def _detect(number: str, order: JSON, fulfillment_meta: dict[str, Any], default: str) -> Detected:
    address = order.get("shippingAddress") or {}
    return detect(
        number,
        shipping_method=order.get("shippingMethodName"),
        country=(address.get("country") or {}).get("code"),
        fulfillment_metadata=fulfillment_meta,
        order_metadata=metadata_dict(order.get("metadata")),
        default=default,
    )


def _schedule_first_poll(shipment: Shipment, now: datetime) -> None:
    shipment.next_poll_at = None if shipment.carrier == "manual" else now


async def follow_fulfillment(
    session: AsyncSession,
    installation_id: int,
    event: JSON,
    *,
    profile_id: int | None,
    issued_at: datetime,
    default_carrier: str = DEFAULT_CARRIER,
) -> Shipment | None:
    """Create or update the shipment of this fulfillment snapshot (older snapshots than
    the one last followed are ignored, as the fulfillment fold does)."""
    data: JSON = event.get("fulfillment") or {}
    order: JSON = event.get("order") or {}
    fulfillment_id = str(data.get("id") or "")
    tracking_number = str(data.get("trackingNumber") or "").strip()
    status = str(data.get("status") or "FULFILLED")
    fulfillment_meta = metadata_dict(data.get("metadata"))
    shipment = await get_shipment(session, installation_id, fulfillment_id)
    if shipment is None:
        if not tracking_number or status in STOPPED or not fulfillment_id:
            return None
        detected = _detect(tracking_number, order, fulfillment_meta, default_carrier)
        address = order.get("shippingAddress") or {}
        shipment = Shipment(
            installation_id=installation_id,
            fulfillment_saleor_id=fulfillment_id,
            order_saleor_id=str(order.get("id") or ""),
            order_number=order.get("number"),
            profile_id=profile_id,
            tracking_number=tracking_number[:256],
            carrier=detected.carrier,
            carrier_source=detected.source,
            status=Status.PENDING,
            destination_city=(address.get("city") or None),
            destination_country=((address.get("country") or {}).get("code") or None),
            shipped_at=issued_at,
            status_changed_at=issued_at,
            source_updated_at=issued_at,
            quiet=False,
            had_exception=False,
            poll_failures=0,
        )
        _schedule_first_poll(shipment, issued_at)
        session.add(shipment)
        await session.flush()
    elif issued_at < shipment.source_updated_at:
        return shipment
    else:
        shipment.source_updated_at = issued_at
        if profile_id is not None:
            shipment.profile_id = profile_id
        if status == "CANCELED" or not tracking_number:
            shipment.cancelled_at = shipment.cancelled_at or issued_at
            shipment.next_poll_at = None
            return shipment
        shipment.cancelled_at = None
        if tracking_number != shipment.tracking_number:
            await session.execute(delete(Checkpoint).where(Checkpoint.shipment_id == shipment.id))
            _reset(shipment, tracking_number[:256], issued_at)
            if shipment.carrier_source != "staff":
                redetected = _detect(tracking_number, order, fulfillment_meta, default_carrier)
                shipment.carrier, shipment.carrier_source = redetected.carrier, redetected.source
            _schedule_first_poll(shipment, issued_at)
        elif shipment.carrier_source != "staff":
            redetected = _detect(tracking_number, order, fulfillment_meta, default_carrier)
            if redetected.source == "metadata" and redetected.carrier != shipment.carrier:
                shipment.carrier, shipment.carrier_source = redetected.carrier, "metadata"
                _schedule_first_poll(shipment, issued_at)
    await _manual_status(session, shipment, fulfillment_meta, issued_at)
    return shipment


async def _manual_status(
    session: AsyncSession, shipment: Shipment, meta: dict[str, Any], issued_at: datetime
) -> None:
    """Staff may drive a manual shipment from Saleor: `tracking_status` metadata."""
    raw = meta.get(STATUS_KEY)
    if shipment.carrier != "manual" or not isinstance(raw, str) or not raw.strip():
        return
    try:
        status = parse_status(raw)
    except ValueError:
        return  # a typo in Saleor's dashboard must not fail the whole fold
    text = meta.get(TEXT_KEY)
    await set_status(
        session,
        shipment,
        status,
        issued_at,
        carrier_text=text if isinstance(text, str) else None,
        sub_status=None,
    )


async def set_status(
    session: AsyncSession,
    shipment: Shipment,
    status: Status,
    occurred_at: datetime,
    *,
    carrier_text: str | None = None,
    sub_status: str | None = None,
    pickup_point: str | None = None,
    pickup_hours: str | None = None,
    estimated_delivery: datetime | None = None,
) -> bool:
    """A status set by staff, applied like any carrier update (and kept as a checkpoint
    of the parcel's history)."""
    point = CheckpointData(
        occurred_at=occurred_at,
        status=status,
        sub_status=sub_status,
        carrier_status=f"manual:{status.value}",
        message=(carrier_text or TITLES[status])[:1024],
        location=pickup_point,
    )
    update = TrackingUpdate(
        checkpoints=(point,),
        tracking_number=shipment.tracking_number,
        status=status,
        sub_status=sub_status,
        carrier_status=f"manual:{status.value}",
        carrier_text=carrier_text or None,
        estimated_delivery=estimated_delivery,
        pickup_point=pickup_point,
        pickup_hours=pickup_hours,
        occurred_at=occurred_at,
    )
    changed = await apply_update(session, shipment, update, occurred_at)
    if shipment.carrier == "manual":
        shipment.next_poll_at = None
    return changed


def reschedule_now(shipment: Shipment, now: datetime) -> None:
    """Poll at the next tick (a carrier push said "look", or staff changed the carrier)."""
    if shipment.cancelled_at is None and shipment.carrier != "manual":
        if not shipment.status.is_final:
            shipment.next_poll_at = now
