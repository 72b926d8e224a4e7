"""Carrier pushes, inbox first: verified, stored under the carrier's event id (a
redelivery is a no-op), committed, then applied by a job."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.db.locks import lock_installation
from plugin.db.upsert import insert_ignore
from plugin.kit.after_commit import enqueue_after_commit, unit_of_work
from plugin.kit.bodies import parse_json
from plugin.kit.crypto import SecretBox
from plugin.tracking import alerts
from plugin.tracking.accounts import adapter_for
from plugin.tracking.carriers.base import WebhookEvent, WebhookRejected
from plugin.tracking.models import CarrierAccount, CarrierWebhook, Shipment, WebhookStatus
from plugin.tracking.shipments import reschedule_now
from plugin.tracking.updates import apply_update

logger = logging.getLogger(__name__)

APPLY_ACTOR = "tracking.webhook"


@dataclass(frozen=True)
class Stored:
    stored: int
    duplicates: int


async def account_by_key(session: AsyncSession, key: str) -> CarrierAccount | None:
    found: CarrierAccount | None = await session.scalar(
        select(CarrierAccount).where(
            CarrierAccount.webhook_key == key, CarrierAccount.enabled.is_(True)
        )
    )
    return found


async def store(
    session: AsyncSession, account: CarrierAccount, events: list[WebhookEvent], body: bytes
) -> Stored:
    """One inbox row per event id; the apply job is sent after the commit."""
    stored = duplicates = 0
    for event in events:
        new_id = await insert_ignore(
            session,
            CarrierWebhook,
            {
                "installation_id": account.installation_id,
                "carrier": account.carrier,
                "event_id": event.event_id[:256],
                "body": body.decode("utf-8", errors="replace"),
                "received_at": utcnow(),
                "status": WebhookStatus.PENDING,
            },
            conflict_columns=["installation_id", "carrier", "event_id"],
        )
        if new_id is None:
            duplicates += 1
        else:
            stored += 1
            enqueue_after_commit(session, APPLY_ACTOR, webhook_id=new_id)
    return Stored(stored, duplicates)


def verified_events(
    account: CarrierAccount,
    headers: dict[str, str],
    body: bytes,
    http: httpx.AsyncClient,
    secrets_box: SecretBox,
) -> list[WebhookEvent]:
    adapter = adapter_for(account, account.carrier, http, secrets_box)
    adapter.verify(headers, body)
    events = adapter.webhook_events(body)
    if not events:
        raise WebhookRejected("the webhook carries no event")
    return events


async def apply(
    db: Database,
    http: httpx.AsyncClient,
    secrets_box: SecretBox,
    webhook_id: int,
    *,
    stalled_days: float,
) -> WebhookStatus | None:
    """Apply one stored push to its shipment(s); idempotent (a done row is skipped)."""
    async with unit_of_work(db) as session:
        row = await session.get(CarrierWebhook, webhook_id)
        if row is None or row.status == WebhookStatus.DONE:
            return row.status if row else None
        await lock_installation(session, row.installation_id)
        account = await session.scalar(
            select(CarrierAccount).where(
                CarrierAccount.installation_id == row.installation_id,
                CarrierAccount.carrier == row.carrier,
            )
        )
        now = utcnow()
        try:
            if account is None:
                raise WebhookRejected(f"the {row.carrier} account was removed")
            adapter = adapter_for(account, row.carrier, http, secrets_box)
            events = adapter.webhook_events(row.body.encode())
        except WebhookRejected as exc:
            row.status, row.last_error, row.processed_at = WebhookStatus.FAILED, str(exc), now
            return row.status
        matched = 0
        for event in events:
            shipments = await session.scalars(
                select(Shipment).where(
                    Shipment.installation_id == row.installation_id,
                    Shipment.carrier == row.carrier,
                    Shipment.tracking_number == event.tracking_number,
                    Shipment.cancelled_at.is_(None),
                )
            )
            for shipment in shipments:
                matched += 1
                if event.update is None:
                    reschedule_now(shipment, now)
                else:
                    await apply_update(session, shipment, event.update, now)
                    await alerts.raise_alerts(session, shipment, now, stalled_days)
        row.status, row.processed_at = WebhookStatus.DONE, now
        row.last_error = None if matched else "no shipment has this tracking number"
        return row.status


async def pending_ids(session: AsyncSession, limit: int = 500) -> list[int]:
    """Stored pushes never applied (a worker died, Redis was down): the tick re-drives."""
    return list(
        await session.scalars(
            select(CarrierWebhook.id)
            .where(CarrierWebhook.status == WebhookStatus.PENDING)
            .order_by(CarrierWebhook.id)
            .limit(limit)
        )
    )


def describe(body: bytes) -> str:
    """A short description of a rejected body for the log (never the whole body)."""
    try:
        payload = parse_json(body)
    except ValueError:
        return f"{len(body)} bytes, not JSON"
    return f"JSON with keys {sorted(payload)[:8]}" if isinstance(payload, dict) else "JSON"
