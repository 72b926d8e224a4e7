"""Carrier pushes through the app: verified (AfterShip's HMAC), stored inbox-first and
deduplicated by the carrier's event id, then applied by the job worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from plugin.db.engine import Database
from plugin.kit.after_commit import unit_of_work
from plugin.profiles.models import Profile
from plugin.timeline.models import TimelineEntry
from plugin.tracking import accounts
from plugin.tracking import webhooks as carrier_webhooks
from plugin.tracking.carriers.aftership import sign
from plugin.tracking.models import CarrierAccount, CarrierWebhook, Shipment, WebhookStatus
from plugin.tracking.shipments import follow_fulfillment
from plugin.tracking.statuses import Status
from tests.carrier_doubles import AfterShipDouble, CdekDouble
from tests.conftest import RunningApp, eventually, new_installation
from tests.simulator import FakeShop

BOX = accounts.box("test-secret-key-not-for-production")
FUTURE = datetime(2027, 7, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def aftership() -> Iterator[AfterShipDouble]:
    with AfterShipDouble() as double:
        yield double


async def _setup(
    db: Database, carrier: str, base_url: str, credentials: dict[str, str], number: str
) -> tuple[int, str]:
    """A shop with a carrier account and one shipment; (shipment id, webhook URL path)."""
    installation_id = await new_installation(db)
    shop = FakeShop(now=FUTURE)
    order = shop.create_order(email="leo@example.com", lines=[("Cup", "CUP", "Home", 1, 5.0)])
    event = shop.fulfill(order[0].object_id, tracking_number=number)[0]
    async with unit_of_work(db) as session:
        profile = Profile(installation_id=installation_id, email="leo@example.com")
        session.add(profile)
        await session.flush()
        account: CarrierAccount = await accounts.configure(
            session,
            BOX,
            installation_id=installation_id,
            carrier=carrier,
            credentials=credentials,
            base_url=base_url,
        )
        payload: dict[str, Any] = event.payload
        payload["fulfillment"]["metadata"] = [{"key": "carrier", "value": carrier}]
        shipment = await follow_fulfillment(
            session, installation_id, payload, profile_id=profile.id, issued_at=event.issued_at
        )
        assert shipment is not None
        return shipment.id, f"/api/tracking/webhooks/{account.webhook_key}"


async def _get(db: Database, shipment_id: int) -> Shipment:
    async with db.session() as session:
        shipment = await session.get(Shipment, shipment_id)
        assert shipment is not None
        return shipment


async def test_signed_push_is_stored_once_and_applied(
    app_server: RunningApp, db: Database, aftership: AfterShipDouble
) -> None:
    number = "PUSH000000001"
    sid, path = await _setup(
        db,
        "aftership",
        aftership.base_url,
        {"api_key": "as-key", "webhook_secret": "as-secret"},
        number,
    )
    aftership.set_tracking(
        number,
        "AvailableForPickup",
        subtag="AvailableForPickup_001",
        checkpoints=[
            ("2027-07-02T10:00:00Z", "AvailableForPickup", "Ready at Packstation 105", "Berlin")
        ],
        pickup_location="Packstation 105, Berlin",
        pickup_note="Open 24/7",
    )
    body, headers = aftership.webhook(number, event_id="5f0a4c1e-aaaa-4bbb-8ccc-000000000001")
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        first = await client.post(path, content=body, headers=headers)
        again = await client.post(path, content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"ok": True, "stored": 1, "duplicates": 0}
    assert again.json() == {"ok": True, "stored": 0, "duplicates": 1}

    async def applied() -> Shipment | None:
        shipment = await _get(db, sid)
        return shipment if shipment.status is Status.AVAILABLE_FOR_PICKUP else None

    shipment = await eventually(applied)
    assert shipment.pickup_point == "Packstation 105, Berlin"
    async with db.session() as session:
        rows = await session.scalar(
            select(func.count())
            .select_from(CarrierWebhook)
            .where(CarrierWebhook.event_id == "5f0a4c1e-aaaa-4bbb-8ccc-000000000001")
        )
        entries = list(
            await session.scalars(
                select(TimelineEntry).where(
                    TimelineEntry.subject_id == str(sid), TimelineEntry.subject_type == "shipment"
                )
            )
        )
    assert rows == 1
    assert [e.kind for e in entries] == ["shipment_available_for_pickup"]
    data = entries[0].data or {}
    assert data["pickup_point"] == "Packstation 105, Berlin"
    assert data["pickup_hours"] == "Open 24/7"
    assert aftership.requests == []  # the signed push carried the state: no poll needed


async def test_bad_pushes_are_refused_and_nothing_is_stored(
    app_server: RunningApp, db: Database, aftership: AfterShipDouble
) -> None:
    number = "PUSH000000002"
    _, path = await _setup(
        db,
        "aftership",
        aftership.base_url,
        {"api_key": "as-key", "webhook_secret": "as-secret"},
        number,
    )
    aftership.set_tracking(number, "Delivered")
    body, headers = aftership.webhook(number, event_id="bad-1")
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        forged = await client.post(
            path, content=body, headers={**headers, "aftership-hmac-sha256": "AAAA"}
        )
        unsigned = await client.post(
            path, content=body, headers={"Content-Type": "application/json"}
        )
        unknown = await client.post("/api/tracking/webhooks/nope", content=body, headers=headers)
        junk = b"not json"
        malformed = await client.post(
            path, content=junk, headers={"aftership-hmac-sha256": sign("as-secret", junk)}
        )
        huge = await client.post(path, content=b"x" * (5 * 1024 * 1024 + 1), headers=headers)
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "REJECTED")
    assert unsigned.status_code == 401
    assert unknown.status_code == 404
    assert malformed.status_code == 400
    assert "not JSON" in malformed.json()["error"]["message"]
    assert huge.status_code == 413
    async with db.session() as session:
        stored = await session.scalar(
            select(func.count())
            .select_from(CarrierWebhook)
            .where(CarrierWebhook.event_id == "bad-1")
        )
    assert stored == 0


async def test_unsigned_cdek_push_only_schedules_a_poll(
    app_server: RunningApp, db: Database
) -> None:
    with CdekDouble() as cdek:
        number = "1106200001"
        sid, path = await _setup(
            db,
            "cdek",
            cdek.base_url,
            {"client_id": "cdek-id", "client_secret": "cdek-secret"},
            number,
        )
        async with unit_of_work(db) as session:
            shipment = await session.get(Shipment, sid)
            assert shipment is not None
            shipment.next_poll_at = FUTURE + timedelta(days=30)
        cdek.set_statuses(number, [("DELIVERED", "Вручен", "2027-07-03T12:00:00+0300", "Казань")])
        async with httpx.AsyncClient(base_url=app_server.base_url) as client:
            response = await client.post(path, content=cdek.webhook(number))
        assert response.status_code == 200, response.text

        async def rescheduled() -> Shipment | None:
            found = await _get(db, sid)
            due = found.next_poll_at
            return found if due is not None and due < FUTURE else None

        shipment = await eventually(rescheduled)
        # The push is not trusted for the status: it changes only through a poll.
        polled = any(r["path"].startswith("/v2/orders") for r in cdek.requests)
        assert shipment.status is Status.PENDING or polled


async def test_a_stored_push_left_behind_is_applied_once(
    db: Database, aftership: AfterShipDouble
) -> None:
    """A worker died between the commit and the job: the tick finds the pending row; a
    second apply (a redelivered job) changes nothing."""
    number = "PUSH000000009"
    sid, _ = await _setup(
        db,
        "aftership",
        aftership.base_url,
        {"api_key": "as-key", "webhook_secret": "as-secret"},
        number,
    )
    aftership.set_tracking(
        number,
        "AttemptFail",
        checkpoints=[("2027-07-02T10:00:00Z", "AttemptFail", "Nobody home", "Berlin")],
    )
    body, _ = aftership.webhook(number, event_id="left-behind-1")
    async with unit_of_work(db) as session:
        shipment = await session.get(Shipment, sid)
        assert shipment is not None
        row = CarrierWebhook(
            installation_id=shipment.installation_id,
            carrier="aftership",
            event_id="left-behind-1",
            body=body.decode(),
            status=WebhookStatus.PENDING,
        )
        session.add(row)
        await session.flush()
        row_id = row.id
    async with db.session() as session:
        assert row_id in await carrier_webhooks.pending_ids(session, limit=10_000)
    async with httpx.AsyncClient() as http:
        for _ in range(2):
            status = await carrier_webhooks.apply(db, http, BOX, row_id, stalled_days=5)
            assert status is WebhookStatus.DONE
    shipment = await _get(db, sid)
    assert shipment.status is Status.ATTEMPT_FAIL
    async with db.session() as session:
        kinds = list(
            await session.scalars(
                select(TimelineEntry.kind).where(
                    TimelineEntry.subject_type == "shipment", TimelineEntry.subject_id == str(sid)
                )
            )
        )
    assert kinds == ["shipment_attempt_fail"]
