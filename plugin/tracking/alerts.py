"""Staff alerts about parcels: no movement for N days, an exception, a return to the
sender. Each is raised once per shipment (kept in `Shipment.alerts`), then written back
to Saleor as an order note and fulfillment metadata, where the shop's staff look."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.kit.crypto import SecretBox
from plugin.saleor.client import SaleorClient, SaleorError, load_query
from plugin.saleor.models import Installation, InstallationStatus
from plugin.tracking.models import Shipment
from plugin.tracking.statuses import FINAL, RETURNED_TO_SENDER, Status

logger = logging.getLogger(__name__)

# Fulfillment metadata keys the app writes (never read back as carrier hints).
META_STATUS = "crm_tracking_status"
META_ALERT = "crm_tracking_alert"


def wanted(shipment: Shipment, now: datetime, stalled_days: float) -> dict[str, str]:
    """The alerts the shipment's state calls for, by key (a key never repeats)."""
    found: dict[str, str] = {}
    number = shipment.tracking_number
    where = f"parcel {number} ({shipment.carrier}) of order #{shipment.order_number or '?'}"
    text = f": {shipment.carrier_text}" if shipment.carrier_text else ""
    if shipment.cancelled_at is not None:
        return found
    if shipment.status == Status.EXCEPTION and shipment.sub_status == RETURNED_TO_SENDER:
        found[f"returned:{number}"] = f"CRM: {where} is being returned to the sender{text}"
    elif shipment.status == Status.EXCEPTION:
        key = f"exception:{number}:{shipment.sub_status or shipment.carrier_status or ''}"
        found[key] = f"CRM: delivery problem with {where}{text}"
    # An exception has its own alert; "no movement" is about parcels meant to be moving,
    # and only what the carrier confirmed (a parcel nobody can track is no news).
    if shipment.status not in FINAL and shipment.status != Status.EXCEPTION and _tracked(shipment):
        still = now - shipment.status_changed_at
        if still >= timedelta(days=stalled_days):
            since = shipment.status_changed_at.date().isoformat()
            key = f"stalled:{number}:{shipment.status.value}:{since}"
            found[key] = (
                f"CRM: no movement of {where} for {still.days} days "
                f"(status {shipment.status.value} since {since}){text}"
            )
    return found


def _tracked(shipment: Shipment) -> bool:
    return shipment.last_polled_at is not None and shipment.last_error is None


def raise_alerts(shipment: Shipment, now: datetime, stalled_days: float) -> list[str]:
    """Remember new alerts as unsent; returns their keys."""
    current: dict[str, Any] = dict(shipment.alerts or {})
    new = []
    for key, message in wanted(shipment, now, stalled_days).items():
        if key not in current:
            current[key] = {"message": message, "raised_at": now.isoformat(), "sent_at": None}
            new.append(key)
    if new:
        shipment.alerts = current  # a new dict: JSON columns track assignment, not mutation
        shipment.alerts_pending = True
    return new


def unsent(shipment: Shipment) -> list[tuple[str, str]]:
    return [
        (key, str(alert.get("message")))
        for key, alert in (shipment.alerts or {}).items()
        if isinstance(alert, dict) and not alert.get("sent_at")
    ]


async def stalled_candidates(
    session: AsyncSession,
    now: datetime,
    stalled_days: float,
    *,
    installation_id: int | None = None,
    limit: int = 1000,
) -> list[Shipment]:
    """Shipments whose status is older than the threshold (not final, not cancelled)."""
    cutoff = now - timedelta(days=stalled_days)
    statement = select(Shipment).where(
        Shipment.cancelled_at.is_(None),
        Shipment.status.not_in([*FINAL, Status.EXCEPTION]),
        Shipment.status_changed_at <= cutoff,
        Shipment.last_polled_at.is_not(None),
        Shipment.last_error.is_(None),
    )
    if installation_id is not None:
        statement = statement.where(Shipment.installation_id == installation_id)
    rows = await session.scalars(statement.order_by(Shipment.status_changed_at).limit(limit))
    return list(rows)


def _errors(body: dict[str, Any], field: str) -> list[str]:
    payload = (body.get("data") or {}).get(field) or {}
    messages = [str(e.get("message")) for e in payload.get("errors") or []]
    messages += [str(e.get("message")) for e in body.get("errors") or []]
    return messages


async def write_back(client: SaleorClient, shipment: Shipment, message: str) -> None:
    """The order note and the fulfillment metadata; raises SaleorError if Saleor refuses."""
    note = await client.execute(
        load_query("order_note_add"), {"order": shipment.order_saleor_id, "message": message}
    )
    if problems := _errors(note, "orderNoteAdd"):
        raise SaleorError("ORDER_NOTE_FAILED", "; ".join(problems))
    meta = await client.execute(
        load_query("update_metadata"),
        {
            "id": shipment.fulfillment_saleor_id,
            "input": [
                {"key": META_STATUS, "value": shipment.status.value},
                {"key": META_ALERT, "value": message},
            ],
        },
    )
    if problems := _errors(meta, "updateMetadata"):
        raise SaleorError("METADATA_FAILED", "; ".join(problems))


def mark_sent(shipment: Shipment, key: str, now: datetime) -> None:
    current = dict(shipment.alerts or {})
    alert = dict(current.get(key) or {})
    alert["sent_at"] = now.isoformat()
    current[key] = alert
    shipment.alerts = current
    shipment.alerts_pending = bool(unsent(shipment))


async def _claim(db: Database, shipment_id: int) -> tuple[Shipment, Installation] | None:
    """Take the shipment's pending alerts for this worker alone (a conditional update:
    two workers never write the same note twice)."""
    async with unit_of_work(db) as session:
        claimed = await session.execute(
            update(Shipment)
            .where(Shipment.id == shipment_id, Shipment.alerts_pending.is_(True))
            .values(alerts_pending=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return None
        shipment = await session.get(Shipment, shipment_id)
        installation = (
            await session.get(Installation, shipment.installation_id) if shipment else None
        )
        if shipment is None or installation is None:
            return None
        session.expunge_all()
        return shipment, installation


async def send_pending(
    db: Database, http: httpx.AsyncClient, token_box: SecretBox, *, limit: int = 200
) -> int:
    """Write every unsent alert to Saleor; one that fails stays pending for the next
    tick. Saleor is called outside any transaction (a slow Saleor holds no lock).
    Returns how many went out."""
    async with db.session() as session:
        ids = list(
            await session.scalars(
                select(Shipment.id).where(Shipment.alerts_pending.is_(True)).limit(limit)
            )
        )
    sent = 0
    for shipment_id in ids:
        claimed = await _claim(db, shipment_id)
        if claimed is None:
            continue
        shipment, installation = claimed
        done: list[str] = []
        if installation.status == InstallationStatus.ACTIVE:
            client = SaleorClient(
                http, installation.saleor_api_url, token_box.decrypt(installation.token_encrypted)
            )
            for key, message in unsent(shipment):
                try:
                    await write_back(client, shipment, message)
                except SaleorError as exc:
                    logger.warning("alert %s of shipment %s not written: %s", key, shipment.id, exc)
                    break
                done.append(key)
        async with unit_of_work(db) as session:
            current = await session.get(Shipment, shipment.id)
            if current is None:
                continue
            for key in done:
                mark_sent(current, key, utcnow())
            # Still unsent (Saleor failed, or raised meanwhile): the next tick tries again;
            # an uninstalled shop has nobody to tell any more.
            active = installation.status == InstallationStatus.ACTIVE
            current.alerts_pending = active and bool(unsent(current))
        sent += len(done)
    return sent
