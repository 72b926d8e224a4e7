"""Staff alerts about parcels: no movement for N days, an exception, a return to the
sender. Each is raised once per shipment (kept in `Shipment.alerts`) and put in the
outbox (`AlertOutbox`) in the same transaction as the status that raised it, then
written back to Saleor as an order note and fulfillment metadata, where the shop's staff
look. The scheduled tick re-drives the outbox: a crash anywhere loses no alert, and a
note Saleor already took is not written again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from plugin.db.base import utcnow
from plugin.db.engine import Database
from plugin.db.upsert import insert_ignore
from plugin.kit.after_commit import unit_of_work
from plugin.kit.crypto import SecretBox
from plugin.saleor.client import SaleorClient, SaleorError, load_query
from plugin.saleor.models import Installation, InstallationStatus
from plugin.tracking.models import AlertOutbox, Shipment
from plugin.tracking.statuses import FINAL, RETURNED_TO_SENDER, Status

logger = logging.getLogger(__name__)

# Fulfillment metadata keys the app writes (never read back as carrier hints).
META_STATUS = "crm_tracking_status"
META_ALERT = "crm_tracking_alert"
# How long a worker may hold an alert before another one takes it over.
LEASE = timedelta(minutes=5)
# Refusals (2, 4, … 60 minutes apart) before an alert is given up.
MAX_ATTEMPTS = 30


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


async def raise_alerts(
    session: AsyncSession, shipment: Shipment, now: datetime, stalled_days: float
) -> list[str]:
    """Remember new alerts on the shipment and put each in the outbox, in the caller's
    transaction (the one that wrote the status); returns their keys."""
    current: dict[str, Any] = dict(shipment.alerts or {})
    new = []
    for key, message in wanted(shipment, now, stalled_days).items():
        if key not in current:
            current[key] = {"message": message, "raised_at": now.isoformat(), "sent_at": None}
            new.append(key)
            await insert_ignore(
                session,
                AlertOutbox,
                {
                    "installation_id": shipment.installation_id,
                    "shipment_id": shipment.id,
                    "key": key[:512],
                    "message": message,
                    "raised_at": now,
                    "attempts": 0,
                },
                conflict_columns=["shipment_id", "key"],
            )
    if new:
        shipment.alerts = current  # a new dict: JSON columns track assignment, not mutation
        shipment.alerts_pending = True
    return new


async def stalled_candidates(
    session: AsyncSession,
    now: datetime,
    stalled_days: float,
    *,
    installation_id: int | None = None,
    limit: int = 1000,
) -> list[Shipment]:
    """Shipments whose status is older than the threshold (not final, not cancelled),
    leaving out those already alerted about this status (else the same first `limit`
    would come back every tick and the rest never be looked at)."""
    cutoff = now - timedelta(days=stalled_days)
    alerted = (
        select(AlertOutbox.id)
        .where(
            AlertOutbox.shipment_id == Shipment.id,
            AlertOutbox.key.like("stalled:%"),
            AlertOutbox.raised_at >= Shipment.status_changed_at,
        )
        .exists()
    )
    statement = select(Shipment).where(
        Shipment.cancelled_at.is_(None),
        Shipment.status.not_in([*FINAL, Status.EXCEPTION]),
        Shipment.status_changed_at <= cutoff,
        Shipment.last_polled_at.is_not(None),
        Shipment.last_error.is_(None),
        ~alerted,
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


async def already_noted(client: SaleorClient, shipment: Shipment, message: str) -> bool:
    """Whether the order already carries this note (a worker wrote it, then died before
    it could record so)."""
    body = await client.execute(load_query("order_notes"), {"id": shipment.order_saleor_id})
    if body.get("errors"):
        raise SaleorError("ORDER_NOTES_FAILED", "; ".join(_errors(body, "order")))
    order = (body.get("data") or {}).get("order") or {}
    return any(
        event.get("type") == "NOTE_ADDED" and event.get("message") == message
        for event in order.get("events") or []
        if isinstance(event, dict)
    )


async def write_back(
    client: SaleorClient, shipment: Shipment, message: str, *, note: bool = True
) -> None:
    """The order note (unless already there) and the fulfillment metadata; raises
    SaleorError if Saleor refuses."""
    if note:
        answer = await client.execute(
            load_query("order_note_add"), {"order": shipment.order_saleor_id, "message": message}
        )
        if problems := _errors(answer, "orderNoteAdd"):
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


@dataclass
class Claimed:
    alert: AlertOutbox
    shipment: Shipment
    installation: Installation


def _claimable(now: datetime) -> list[Any]:
    # Not before it was raised: a worker whose clock lags the one that raised it waits.
    return [
        AlertOutbox.raised_at <= now,
        AlertOutbox.sent_at.is_(None),
        AlertOutbox.dropped_at.is_(None),
        or_(AlertOutbox.claimed_until.is_(None), AlertOutbox.claimed_until <= now),
    ]


async def _claim(db: Database, alert_id: int, now: datetime, lease: timedelta) -> Claimed | None:
    """Lease one outbox row to this worker (a conditional update: two workers never
    hold it at once); a worker that dies lets the lease run out and the next one
    takes over."""
    async with unit_of_work(db) as session:
        claimed = await session.execute(
            update(AlertOutbox)
            .where(AlertOutbox.id == alert_id, *_claimable(now))
            .values(claimed_until=now + lease, attempts=AlertOutbox.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            return None
        alert = await session.get(AlertOutbox, alert_id)
        shipment = await session.get(Shipment, alert.shipment_id) if alert else None
        installation = await session.get(Installation, alert.installation_id) if alert else None
        if alert is None or shipment is None or installation is None:
            return None
        session.expunge_all()
        return Claimed(alert, shipment, installation)


async def _deliver(saleor_http: httpx.AsyncClient, token_box: SecretBox, claimed: Claimed) -> None:
    """Write the note to Saleor; a row claimed before (the last worker may have died
    after Saleor took the note) is checked against the order's notes first."""
    installation, alert = claimed.installation, claimed.alert
    client = SaleorClient(
        saleor_http, installation.saleor_api_url, token_box.decrypt(installation.token_encrypted)
    )
    note = alert.attempts <= 1 or not await already_noted(client, claimed.shipment, alert.message)
    await write_back(client, claimed.shipment, alert.message, note=note)


async def _finish(
    db: Database, claimed: Claimed, now: datetime, *, error: str | None, drop: bool = False
) -> None:
    async with unit_of_work(db) as session:
        alert = await session.get(AlertOutbox, claimed.alert.id)
        shipment = await session.get(Shipment, claimed.shipment.id)
        if alert is None:
            return
        if drop:
            alert.dropped_at, alert.last_error = now, error
        elif error is None:
            alert.sent_at, alert.last_error = now, None
            if shipment is not None:
                mark_sent(shipment, alert.key, now)
        elif alert.attempts >= MAX_ATTEMPTS:  # about a day of refusals: Saleor means it
            alert.dropped_at, alert.last_error = now, error[:2000]
        else:
            # Retried at the next tick after a short pause that grows with each failure.
            alert.last_error = error[:2000]
            alert.claimed_until = now + timedelta(minutes=min(60, 2 ** min(alert.attempts, 6)))
        if shipment is not None:
            waiting = await session.scalar(
                select(AlertOutbox.id)
                .where(
                    AlertOutbox.shipment_id == shipment.id,
                    AlertOutbox.sent_at.is_(None),
                    AlertOutbox.dropped_at.is_(None),
                )
                .limit(1)
            )
            shipment.alerts_pending = waiting is not None


async def send_pending(
    db: Database,
    saleor_http: httpx.AsyncClient,
    token_box: SecretBox,
    *,
    limit: int = 200,
    clock: Callable[[], datetime] = utcnow,
    lease: timedelta = LEASE,
) -> int:
    """Write every alert waiting in the outbox to Saleor, each at most once; one that
    fails waits for a later tick. Saleor is called outside any transaction (a slow
    Saleor holds no lock), through `saleor_http`: the egress policy's client in the jobs
    (`AppContext.saleor_client`). Returns how many went out."""
    now = clock()
    async with db.session() as session:
        ids = list(
            await session.scalars(
                select(AlertOutbox.id).where(*_claimable(now)).order_by(AlertOutbox.id).limit(limit)
            )
        )
    sent = 0
    for alert_id in ids:
        claimed = await _claim(db, alert_id, now, lease)
        if claimed is None:
            continue
        if claimed.installation.status != InstallationStatus.ACTIVE:
            # An uninstalled shop has nobody to tell any more.
            await _finish(db, claimed, clock(), error="the shop is not installed", drop=True)
            continue
        try:
            await _deliver(saleor_http, token_box, claimed)
        except SaleorError as exc:
            logger.warning(
                "alert %s of shipment %s not written: %s",
                claimed.alert.key,
                claimed.shipment.id,
                exc,
            )
            await _finish(db, claimed, clock(), error=str(exc))
            continue
        await _finish(db, claimed, clock(), error=None)
        sent += 1
    return sent
