"""The person's parcels in a GDPR export, and erased with them: the destination and
anything a carrier wrote that names them (checkpoint places, texts, stored pushes) goes;
carrier, status and dates stay for the delivery statistics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.profiles.erasers import ErasureScope, register_eraser, register_exporter
from plugin.profiles.privacy import scrub
from plugin.tracking.models import CarrierWebhook, Checkpoint, Shipment


async def _shipments(session: AsyncSession, scope: ErasureScope) -> list[Shipment]:
    return list(
        await session.scalars(
            select(Shipment)
            .where(
                Shipment.installation_id == scope.installation_id,
                Shipment.profile_id == scope.profile_id,
            )
            .order_by(Shipment.id)
        )
    )


async def _checkpoints(session: AsyncSession, shipment_ids: list[int]) -> list[Checkpoint]:
    if not shipment_ids:
        return []
    return list(
        await session.scalars(
            select(Checkpoint)
            .where(Checkpoint.shipment_id.in_(shipment_ids))
            .order_by(Checkpoint.occurred_at, Checkpoint.id)
        )
    )


async def export_shipments(session: AsyncSession, scope: ErasureScope) -> list[dict[str, Any]]:
    shipments = await _shipments(session, scope)
    checkpoints = await _checkpoints(session, [s.id for s in shipments])
    return [
        {
            "order": s.order_number or s.order_saleor_id,
            "carrier": s.carrier,
            "tracking_number": s.tracking_number,
            "status": s.status.value,
            "destination_city": s.destination_city,
            "shipped_at": s.shipped_at,
            "delivered_at": s.delivered_at,
            "checkpoints": [
                {
                    "at": c.occurred_at,
                    "status": c.status.value,
                    "message": c.message,
                    "location": c.location,
                }
                for c in checkpoints
                if c.shipment_id == s.id
            ],
        }
        for s in shipments
    ]


async def erase_shipments(session: AsyncSession, scope: ErasureScope) -> int:
    shipments = await _shipments(session, scope)
    for shipment in shipments:
        shipment.destination_city = None
        shipment.carrier_text = scrub(shipment.carrier_text, scope.pattern)
        shipment.last_error = scrub(shipment.last_error, scope.pattern)
    for checkpoint in await _checkpoints(session, [s.id for s in shipments]):
        checkpoint.message = scrub(checkpoint.message, scope.pattern) or ""
        checkpoint.location = scrub(checkpoint.location, scope.pattern)
    numbers = sorted({s.tracking_number.lower() for s in shipments if s.tracking_number})
    if numbers:
        body = func.lower(CarrierWebhook.body)
        pushes = await session.scalars(
            select(CarrierWebhook).where(
                CarrierWebhook.installation_id == scope.installation_id,
                or_(*(body.contains(n, autoescape=True) for n in numbers)),
            )
        )
        for push in pushes:
            push.body = scrub(push.body, scope.pattern)
    return len(shipments)


register_eraser("shipments", erase_shipments)
register_exporter("shipments", export_shipments)
